"""Fused softmax_1 attention on a GPU against its peers, measured in one run: PyTorch's SDPA (vanilla softmax, flash
backend), SDPA computing softmax_1 exactly through an appended zero key/value, and the eager softmax_1 composition.
Forward and forward+backward TFLOP/s (FlashAttention's counting: 4·B·H·L²·D forward, 2.5x that backward, halved
when causal) at 16k tokens per batch and 2048/D heads.

    OUTEFFHOP_OPS_LIBRARY=build-gpu/src/libouteffhop_ops.so python bench/cuda_attention.py --json out.json
"""
import argparse
import json
import math
import os
import pathlib

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

LIB = os.environ.get("OUTEFFHOP_OPS_LIBRARY") or str(
    pathlib.Path(__file__).resolve().parents[1] / "build" / "src" / "libouteffhop_ops.so")


def ours(q, k, v, causal):
    return torch.ops.outeffhop.attention(q, k, v, None, None, 1.0, causal)


def sdpa_flash(q, k, v, causal):
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def sdpa_zero_key(q, k, v, causal):
    """softmax_1 exactly: a zero key (logit 0 = log 1) and a zero value joined to every row. Causal needs an explicit
    mask (the extra key must stay visible), which rules out the flash backend."""
    b, h, l, d = k.shape
    kz = torch.cat([k, k.new_zeros(b, h, 1, d)], 2)
    vz = torch.cat([v, v.new_zeros(b, h, 1, v.shape[3])], 2)
    mask = None
    if causal:
        mask = torch.ones(l, l + 1, dtype=torch.bool, device=q.device).tril()
        mask[:, -1] = True
    return F.scaled_dot_product_attention(q, kz, vz, attn_mask=mask)


def eager_softmax1(q, k, v, causal):
    l = q.shape[2]
    s = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(q.shape[3]))
    if causal:
        s = s.masked_fill(torch.ones(l, l, dtype=torch.bool, device=q.device).triu(1), -math.inf)
    p = torch.softmax(torch.cat([s, s.new_zeros(s.shape[:-1] + (1,))], -1), -1)[..., :-1]
    return p @ v


IMPLS = {"ours": ours, "sdpa_flash": sdpa_flash, "sdpa_zero_key": sdpa_zero_key, "eager_softmax1": eager_softmax1}


def time_ms(fn, min_iters=5, budget_ms=400):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    iters = max(min_iters, min(50, int(budget_ms / max(start.elapsed_time(end), 1e-3))))
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def measure(impl, q, k, v, causal, backward):
    if not backward:
        with torch.no_grad():
            return time_ms(lambda: impl(q, k, v, causal))
    qg, kg, vg = (t.detach().requires_grad_() for t in (q, k, v))
    dout = torch.randn_like(q)

    def step():
        out = impl(qg, kg, vg, causal)
        torch.autograd.grad(out, (qg, kg, vg), dout)
    return time_ms(step)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="512,1024,2048,4096,8192")
    parser.add_argument("--head-dims", default="64,128")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--tokens", type=int, default=16384, help="B·L per measurement")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.ops.load_library(LIB)
    dtype = getattr(torch, args.dtype)
    props = torch.cuda.get_device_properties(0)
    print(f"{props.name}, {props.multi_processor_count} SMs, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{args.dtype}")
    rows = []
    header = "| D | L | causal | pass | " + " | ".join(IMPLS) + " | ours / flash | ours / zero key |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for d in map(int, args.head_dims.split(",")):
        for l in map(int, args.lengths.split(",")):
            b, h = max(1, args.tokens // l), 2048 // d
            q, k, v = (torch.randn(b, h, l, d, device="cuda", dtype=dtype) for _ in range(3))
            for causal in (False, True):
                flops = 4 * b * h * l * l * d * (0.5 if causal else 1.0)
                for backward in (False, True):
                    work = flops * (3.5 if backward else 1.0)
                    tflops = {}
                    for name, impl in IMPLS.items():
                        try:
                            ms = measure(impl, q, k, v, causal, backward)
                            tflops[name] = work / ms / 1e9
                        except torch.OutOfMemoryError:
                            tflops[name] = None
                        torch.cuda.empty_cache()
                    rows.append({"D": d, "L": l, "B": b, "H": h, "causal": causal,
                                 "pass": "fwd+bwd" if backward else "fwd", "tflops": tflops})
                    cells = ["-" if t is None else f"{t:.0f}" for t in tflops.values()]
                    ratio = lambda peer: ("-" if tflops[peer] is None or tflops["ours"] is None
                                          else f"{tflops['ours'] / tflops[peer]:.2f}")
                    print(f"| {d} | {l} | {causal} | {rows[-1]['pass']} | " + " | ".join(cells) +
                          f" | {ratio('sdpa_flash')} | {ratio('sdpa_zero_key')} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": props.name, "sms": props.multi_processor_count, "torch": torch.__version__,
                       "dtype": args.dtype, "unit": "TFLOP/s", "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
