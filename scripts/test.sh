#!/usr/bin/env bash
# Sets up (Debian packages + .venv), builds, and runs every test: GoogleTest and pytest through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
bash scripts/build.sh "$@"
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)"
echo "[test] done in $((SECONDS - start)) s"
