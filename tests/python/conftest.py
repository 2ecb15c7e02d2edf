"""The op library under test, loaded once: build/src/libouteffhop_ops.so or $OUTEFFHOP_OPS_LIBRARY."""
import os
import pathlib

import pytest
import torch

LIB = os.environ.get("OUTEFFHOP_OPS_LIBRARY") or str(
    pathlib.Path(__file__).resolve().parents[2] / "build" / "src" / "libouteffhop_ops.so")


@pytest.fixture(scope="session")
def ops():
    if not os.path.exists(LIB):
        pytest.fail(f"op library not built: {LIB} (set OUTEFFHOP_OPS_LIBRARY)")
    torch.ops.load_library(LIB)
    return torch.ops.outeffhop
