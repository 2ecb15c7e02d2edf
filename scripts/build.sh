#!/usr/bin/env bash
# Configures and builds outeffhop into build/ (or $BUILD_DIR). Extra arguments go to CMake, e.g.
#   BUILD_DIR=build-asan scripts/build.sh -DOUTEFFHOP_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja --log-level=WARNING "$@"
ninja -C "$BUILD_DIR"
