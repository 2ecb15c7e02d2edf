#!/usr/bin/env bash
# Sets up, builds, and runs the main job on its embedded default: the `demo` experiment (configs/demo.yaml) --
# softmax vs softmax_1 attention on a synthetic no-op task and on Fashion-MNIST (Debian's dataset-fashion-mnist),
# trained, tracked and evaluated in FP32 / FP16 / BF16 / W8A8 / INT8, printed as the paper's Table 1 layout, with
# figures under runs/demo. Extra arguments go to `outeffhop experiment` (e.g. --set seeds=[0,1,2]).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
bash scripts/build.sh
"${BUILD_DIR:-build}/src/outeffhop" info
echo
"${BUILD_DIR:-build}/src/outeffhop" experiment --preset demo --runs-dir "${RUNS_DIR:-runs}" "$@"
echo "[demo] done in $((SECONDS - start)) s; tables and figures in ${RUNS_DIR:-runs}/demo (finished runs are reused:" \
     "delete that folder to train again)"
