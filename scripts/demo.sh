#!/usr/bin/env bash
# Sets up, builds, and runs the main job on its embedded default: associative-memory retrieval of Fashion-MNIST
# (from Debian's dataset-fashion-mnist) with softmax and softmax_1. Extra arguments go to `outeffhop retrieve`.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
bash scripts/build.sh
"${BUILD_DIR:-build}/src/outeffhop" info
echo
"${BUILD_DIR:-build}/src/outeffhop" retrieve "$@"
echo "[demo] done in $((SECONDS - start)) s"
