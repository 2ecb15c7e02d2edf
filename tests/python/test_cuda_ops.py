"""The ops on a GPU (skipped without one): the fused CUDA attention against an independent float64 oracle, with the
rule "error at most 2x that of a naive implementation in the same precision"; gradients, hostile inputs, the
fallbacks, and softmax_n / hopfield_retrieve / the sparse maps on CUDA."""
import math

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

DEV = "cuda"


def zero_key_attention(q, k, v, mask=None, sink=None, n=1.0, causal=False, scale=None):
    """softmax_n attention written out: the no-op key's logit (log n or the head's sink) joins every row's softmax.
    Runs in the inputs' dtype (the naive same-precision implementation) or float64 (the oracle). Returns (out, lse)."""
    lq, lk, d = q.shape[2], k.shape[2], q.shape[3]
    scale = 1 / math.sqrt(d) if scale is None else scale
    s = (q @ k.transpose(-1, -2)) * scale
    if mask is not None:
        s = s + (torch.where(mask, 0.0, -math.inf).to(s.dtype) if mask.dtype == torch.bool else mask.to(s.dtype))
    if causal:
        hidden = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril(lk - lq).logical_not()
        s = s.masked_fill(hidden, -math.inf)
    b, h = q.shape[:2]
    if sink is not None:
        extra = sink.to(s.dtype).view(1, h, 1, 1).expand(b, h, lq, 1)
    else:
        extra = torch.full((b, h, lq, 1), math.log(n) if n > 0 else -math.inf, dtype=s.dtype, device=s.device)
    full = torch.cat([s, extra], -1)
    lse = torch.logsumexp(full.float() if full.dtype != torch.float64 else full, -1).to(s.dtype)
    # A row with nothing to attend to (all -inf, n = 0) is defined as zeros.
    p = torch.softmax(full.float() if full.dtype != torch.float64 else full, -1).nan_to_num(0.0).to(s.dtype)
    return p[..., :-1] @ v, lse


def inputs(b, h, lq, lk, d, dtype, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, h, l, d, generator=g, dtype=torch.float64) * scale).to(dtype).to(DEV)
            for l in (lq, lk, lk)]


def max_err(x, ref):
    return (x.double() - ref.double()).abs().max().item()


def assert_within_rule(ours, naive, ref, what):
    """Our error against the float64 oracle is at most twice the naive same-precision implementation's, in mean and in
    max; the max may exceed that by one rounding of the output (one unit in the last place at the largest reference
    value), which any implementation that rounds its result to this precision can incur."""
    ulp = torch.finfo(ours.dtype).eps * ref.abs().max().item()
    d_ours, d_naive = (ours.double() - ref.double()).abs(), (naive.double() - ref.double()).abs()
    assert d_ours.mean() <= 2 * d_naive.mean() + 1e-7, f"{what}: mean error {d_ours.mean():.3g} vs {d_naive.mean():.3g}"
    e_ours, e_naive = d_ours.max().item(), d_naive.max().item()
    assert e_ours <= 2 * e_naive + ulp, f"{what}: max error {e_ours:.3g} vs naive {e_naive:.3g} (+ ulp {ulp:.3g})"


CASES = [  # b, h, lq, lk, d, causal, n, sink, mask
    (2, 3, 1, 1, 64, False, 1.0, False, None),
    (2, 3, 100, 300, 64, False, 1.0, False, None),
    (1, 2, 257, 129, 128, False, 0.0, False, None),
    (1, 2, 257, 129, 128, True, 1.0, False, None),
    (2, 2, 512, 512, 64, True, 3.5, False, None),
    (1, 4, 130, 200, 128, True, 1.0, True, None),
    (2, 2, 96, 160, 64, False, 1.0, False, "padding"),
    (1, 2, 64, 200, 128, False, 0.0, True, "additive"),
]


def make_mask(kind, b, h, lq, lk):
    if kind == "padding":  # key padding with one batch entry fully masked
        keep = torch.ones(b, 1, 1, lk, dtype=torch.bool)
        keep[0, ..., lk // 2:] = False
        keep[-1] = False
        return keep.to(DEV)
    if kind == "additive":
        g = torch.Generator().manual_seed(5)
        return (torch.randn(1, h, lq, lk, generator=g) * 2).to(DEV)
    return None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", CASES)
def test_fused_cuda_attention_forward_and_gradients(ops, dtype, case):
    torch.manual_seed(0)
    b, h, lq, lk, d, causal, n, use_sink, mask_kind = case
    q, k, v = inputs(b, h, lq, lk, d, dtype)
    mask = make_mask(mask_kind, b, h, lq, lk)
    sink = (torch.randn(h, dtype=torch.float64) - 0.5).to(dtype).to(DEV) if use_sink else None
    grads = [t.clone().requires_grad_() for t in (q, k, v)]
    sink_g = sink.clone().requires_grad_() if use_sink else None
    out, lse = ops.attention_lse(*grads, mask, sink_g, n, causal)
    g_out = torch.randn_like(out)
    g_lse = torch.randn_like(lse)
    torch.autograd.backward([out, lse], [g_out, g_lse])

    ref_in = [t.double().requires_grad_() for t in (q, k, v)]
    ref_sink = sink.double().requires_grad_() if use_sink else None
    ref_out, ref_lse = zero_key_attention(*ref_in, mask, ref_sink, n, causal)
    finite = torch.isfinite(ref_lse)
    torch.autograd.backward([ref_out, ref_lse.where(finite, 0.0)], [g_out.double(), g_lse.double()])

    naive_in = [t.clone().requires_grad_() for t in (q, k, v)]
    naive_sink = sink.clone().requires_grad_() if use_sink else None
    naive_out, naive_lse = zero_key_attention(*naive_in, mask, naive_sink, n, causal)
    torch.autograd.backward([naive_out, naive_lse.where(finite, 0.0)], [g_out, g_lse])

    assert out.dtype == dtype and lse.dtype == dtype
    assert torch.equal(torch.isfinite(lse), finite)
    assert_within_rule(out, naive_out, ref_out, "out")
    assert_within_rule(lse[finite], naive_lse[finite], ref_lse[finite], "lse")
    for name, ours, naive, ref in zip("qkv", grads, naive_in, ref_in):
        assert torch.isfinite(ours.grad).all(), name
        assert_within_rule(ours.grad, naive.grad, ref.grad, "d" + name)
    if use_sink:
        assert_within_rule(sink_g.grad, naive_sink.grad, ref_sink.grad, "dsink")


def test_fused_cuda_attention_runs_fused(ops):
    """The fused path holds no L x L scores: the forward adds little beyond its output (the composite adds
    B*H*L*L floats)."""
    q, k, v = inputs(1, 8, 4096, 4096, 64, torch.float16)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = ops.attention(q, k, v)
    torch.cuda.synchronize()
    added = torch.cuda.max_memory_allocated() - base
    assert added < 4 * out.numel() * out.element_size(), added


def test_fused_cuda_attention_hostile_logits_and_nan_rows(ops):
    q, k, v = inputs(1, 2, 200, 200, 64, torch.float16, scale=10.0)  # logits of order +-1e3 .. 1e4
    q = q * 8
    out, lse = ops.attention_lse(q, k, v)
    ref_out, ref_lse = zero_key_attention(q.double(), k.double(), v.double())
    naive_out, _ = zero_key_attention(q, k, v)
    assert torch.isfinite(out).all() and torch.isfinite(lse).all()
    assert ref_lse.abs().max() > 1e3
    assert_within_rule(out, naive_out, ref_out, "hostile out")

    q2 = q.clone()
    q2[0, 1, 7] = float("nan")
    out2 = ops.attention(q2, k, v)
    assert torch.isnan(out2[0, 1, 7]).all()
    rest = torch.ones(200, dtype=torch.bool, device=DEV)
    rest[7] = False
    assert torch.equal(out2[0, 1, rest], out[0, 1, rest]) and torch.equal(out2[0, 0], out[0, 0])


def test_fused_cuda_attention_all_masked_rows(ops):
    q, k, v = inputs(1, 1, 70, 90, 64, torch.bfloat16)
    keep = torch.ones(70, 90, dtype=torch.bool, device=DEV)
    keep[3] = False
    for n, expected_lse in ((0.0, -math.inf), (1.0, 0.0)):
        qg = q.clone().requires_grad_()
        out, lse = ops.attention_lse(qg, k, v, keep, None, n)
        assert torch.equal(out[0, 0, 3], torch.zeros_like(out[0, 0, 3]))
        assert lse[0, 0, 3].item() == expected_lse
        out.sum().backward()
        assert torch.isfinite(qg.grad).all() and torch.equal(qg.grad[0, 0, 3], torch.zeros_like(qg.grad[0, 0, 3]))


def test_cuda_attention_fallbacks_agree_with_cpu(ops):
    """Inputs the CUDA kernel does not take (float32, D = 32, Dv != D, clipped) run the composite on the GPU."""
    for dtype, d, dv in ((torch.float32, 64, 64), (torch.float16, 32, 32), (torch.float16, 64, 128)):
        q, k = inputs(1, 2, 33, 47, d, dtype)[:2]
        v = inputs(1, 2, 47, 47, dv, dtype, seed=1)[2]
        got = ops.attention(q, k, v, None, None, 1.0, True)
        want = ops.attention(q.cpu().double(), k.cpu().double(), v.cpu().double(), None, None, 1.0, True)
        assert max_err(got.cpu(), want) < (1e-5 if dtype == torch.float32 else 5e-3)
    q, k, v = inputs(1, 2, 33, 47, 64, torch.float32)
    got = ops.clipped_attention(q, k, v, None, None, 1.0, -0.1, 1.1)
    want = ops.clipped_attention(q.cpu(), k.cpu(), v.cpu(), None, None, 1.0, -0.1, 1.1)
    assert max_err(got.cpu(), want) < 1e-5


def test_cuda_attention_rejects_inputs_on_two_devices(ops):
    q, k, v = inputs(1, 2, 8, 8, 64, torch.float16)
    with pytest.raises(RuntimeError, match="attn_mask is on cpu"):
        ops.attention(q, k, v, torch.ones(8, 8, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_n_cuda_matches_cpu(ops, dtype):
    x = torch.randn(37, 1000, dtype=dtype) * 4
    x[3, 5] = -math.inf
    x[4] = -math.inf
    for n in (0.0, 1.0, 2.5):
        xg = x.to(DEV).requires_grad_()
        y = ops.softmax_n(xg, n, -1)
        y_cpu = ops.softmax_n(x, n, -1)
        assert max_err(y.cpu(), y_cpu) < (1e-6 if dtype == torch.float32 else 1e-12)
        g = torch.randn_like(y)
        y.backward(g)
        xc = x.clone().requires_grad_()
        ops.softmax_n(xc, n, -1).backward(g.cpu())
        assert max_err(xg.grad.cpu(), xc.grad) < (1e-5 if dtype == torch.float32 else 1e-12)


def test_hopfield_retrieve_cuda_matches_cpu(ops):
    x = torch.randn(8, 32, dtype=torch.float64)
    mem = torch.randn(100, 32, dtype=torch.float64)
    got = ops.hopfield_retrieve(x.to(DEV), mem.to(DEV), 4.0, 1.0, 5, 0.0)
    want = ops.hopfield_retrieve(x, mem, 4.0, 1.0, 5, 0.0)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.device.type == "cuda"
        assert max_err(g.cpu(), w) < 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sparse_maps_cuda_match_cpu(ops, dtype):
    """The sparse maps on CUDA (ATen compositions) against the CPU kernels: values, masked and NaN rows, gradients."""
    x = torch.randn(33, 70, dtype=dtype) * 3
    x[3, 5] = -math.inf
    x[4] = -math.inf
    x[5, 7] = math.nan
    alpha = 1.2 + torch.rand(33, 1, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-9
    maps = (
        ("sparsemax", lambda t, a: ops.sparsemax(t, -1)),
        ("entmax15", lambda t, a: ops.entmax15(t, -1)),
        ("entmax_bisect", lambda t, a: ops.entmax_bisect(t, a, -1, 50)),
    )
    for name, f in maps:
        got = f(x.to(DEV), alpha.to(DEV))
        want = f(x, alpha)
        assert got.device.type == "cuda", name
        assert torch.equal(got[4].cpu(), torch.zeros(70, dtype=dtype)), name
        assert torch.isnan(got[5]).all(), name
        keep = [i for i in range(33) if i != 5]
        assert max_err(got[keep].cpu(), want[keep]) < tol, name
        xg, ag = x[keep].to(DEV).requires_grad_(), alpha[keep].to(DEV).requires_grad_()
        xc, ac = x[keep].clone().requires_grad_(), alpha[keep].clone().requires_grad_()
        w = torch.randn(32, 70, dtype=dtype)
        (f(xg, ag) * w.to(DEV)).sum().backward()
        (f(xc, ac) * w).sum().backward()
        assert max_err(xg.grad.cpu(), xc.grad) < 10 * tol, name
        if name == "entmax_bisect":
            assert max_err(ag.grad.cpu(), ac.grad) < 10 * tol, name
