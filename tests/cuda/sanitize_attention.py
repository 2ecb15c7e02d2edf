"""A small forward + backward sweep of the fused CUDA attention for compute-sanitizer (memcheck, racecheck): odd
lengths, causal, masks, sinks, both head dims and both half types, checking that every result is finite. Run by
scripts/gpu_check.sh."""
import os
import sys

import torch

torch.ops.load_library(os.environ["OUTEFFHOP_OPS_LIBRARY"])
ops = torch.ops.outeffhop
for dtype in (torch.float16, torch.bfloat16):
    for d in (64, 128):
        for lq, lk, causal in ((37, 70, False), (130, 67, True), (64, 64, True)):
            q, k, v = (torch.randn(2, 3, l, d, device="cuda", dtype=dtype, requires_grad=True) for l in (lq, lk, lk))
            mask = torch.rand(2, 1, lq, lk, device="cuda") > 0.2
            sink = torch.zeros(3, device="cuda", dtype=dtype, requires_grad=True)
            out, lse = ops.attention_lse(q, k, v, mask, sink, 1.0, causal)
            (out.sum() + lse.sum()).backward()
            # n = 1 keeps every row's normaliser >= 1: outputs, lse and every gradient must be finite.
            for name, t in (("out", out), ("lse", lse), ("dq", q.grad), ("dk", k.grad), ("dv", v.grad),
                            ("dsink", sink.grad)):
                assert torch.isfinite(t).all(), f"{name} not finite: {dtype} D={d} {lq}x{lk} causal={causal}"
torch.cuda.synchronize()
print("sanitize run completed", file=sys.stderr)
