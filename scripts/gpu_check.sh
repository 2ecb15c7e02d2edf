#!/usr/bin/env bash
# On a GPU machine with PyTorch, CMake, ninja and nvcc (no package registry): build the op library against that
# PyTorch, run the Python op tests (CPU and CUDA), compute-sanitizer on the fused attention, and the CUDA attention
# benchmark. Logs and the benchmark's JSON go to $OUT (default ./gpu-out).
#   bash scripts/gpu_check.sh [build|test|bench|sanitize]...   (default: all four)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
PY=$(command -v python3 || command -v python)
export OUTEFFHOP_OPS_LIBRARY=$PWD/build-gpu/src/libouteffhop_ops.so
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build test bench sanitize)
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for step in "${steps[@]}"; do
  echo "== $step ($(date +%T))"
  case $step in
    build)
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
      "$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'
      nvcc --version | tail -1
      cmake -S . -B build-gpu -G Ninja -DOUTEFFHOP_OPS_ONLY=ON -DOUTEFFHOP_CUDA=ON -DOUTEFFHOP_PYTHON="$PY" \
        > "$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
      ninja -k 0 -C build-gpu outeffhop_ops > "$OUT/build.log" 2>&1 || { grep -B2 -A12 -m3 error "$OUT/build.log"; exit 1; }
      echo "built $OUTEFFHOP_OPS_LIBRARY" ;;
    test)
      timeout 200 "$PY" -m pytest -q -p no:cacheprovider tests/python 2>&1 | tee "$OUT/pytest.log" | tail -40 ;;
    sanitize)
      for tool in memcheck racecheck; do
        timeout 100 "$SANITIZER" --tool $tool --print-limit 20 "$PY" tests/cuda/sanitize_attention.py \
          > "$OUT/sanitizer-$tool.log" 2>&1
        echo "compute-sanitizer $tool: exit $?"; tail -4 "$OUT/sanitizer-$tool.log"
      done ;;
    bench)
      timeout 280 "$PY" bench/cuda_attention.py --json "$OUT/cuda_attention.json" 2>&1 | tee "$OUT/bench.log" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
