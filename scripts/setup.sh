#!/usr/bin/env bash
# Installs everything outeffhop needs on a Debian 12 machine: Debian packages and a project virtualenv (.venv)
# holding the PyTorch wheel (its LibTorch is what we build against) and the Python test tools. Idempotent: a second
# run installs nothing new, and the torch wheel is downloaded once per machine.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.15.0
NUMPY_VERSION=2.4.6
PYTEST_VERSION=9.2.0
MATPLOTLIB_VERSION=3.11.2
TRANSFORMERS_VERSION=5.23.0  # test-only oracle: our OPT must give Hugging Face's logits

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  python3 python3-venv python3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev libicu-dev libsentencepiece-dev zlib1g-dev
  dataset-fashion-mnist
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The virtualenv lives once per machine (the torch wheel is several GB) and every clone links to it as .venv.
PY=${PYTHON:-python3}
VENV_HOME=${OUTEFFHOP_VENV:-$HOME/.cache/outeffhop/venv-torch$TORCH_VERSION}
if [[ ! -e .venv ]]; then
  if [[ ! -x $VENV_HOME/bin/python ]]; then
    echo "[setup] creating $VENV_HOME with $($PY --version)"
    mkdir -p "$(dirname "$VENV_HOME")"
    $PY -m venv "$VENV_HOME"
  fi
  ln -s "$VENV_HOME" .venv
fi

want="torch==$TORCH_VERSION numpy==$NUMPY_VERSION pytest==$PYTEST_VERSION matplotlib==$MATPLOTLIB_VERSION
      transformers==$TRANSFORMERS_VERSION"
have=$(.venv/bin/python -m pip freeze 2>/dev/null | tr '\n' ' ')
need=()
for req in $want; do
  # pip freeze may append a local tag (torch==2.15.0+cu130): match the name==version prefix.
  [[ " $have" == *" ${req}"* ]] || need+=("$req")
done
if ((${#need[@]})); then
  echo "[setup] pip installing ${need[*]} (torch is a multi-GB CUDA wheel; once per machine)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "${need[@]}"
fi
.venv/bin/python -c 'import torch; print("[setup] torch", torch.__version__, "at", torch.utils.cmake_prefix_path)'
