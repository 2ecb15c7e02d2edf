"""The op library from Python: torch.ops.outeffhop.* against PyTorch itself, gradcheck, and error messages."""
import math

import pytest
import torch


def softmax_n_via_extra_logit(x, n, dim):
    """Independent oracle: softmax over [x, log n] with the extra entry dropped (PyTorch's own softmax)."""
    x = x.double().movedim(dim, -1)
    extra = torch.full(x.shape[:-1] + (1,), math.log(n) if n > 0 else -math.inf, dtype=x.dtype)
    return torch.softmax(torch.cat([x, extra], -1), -1)[..., :-1].movedim(-1, dim)


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), -1), ((3, 5), 0), ((2, 4, 9), 1)])
@pytest.mark.parametrize("n", [0.0, 1.0, 2.5])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6), (torch.bfloat16, 8e-3)])
def test_softmax_n_matches_identity(ops, shape, dim, n, dtype, tol):
    x = (torch.randn(shape, dtype=torch.float64) * 3).to(dtype)
    got = ops.softmax_n(x, n, dim)
    assert got.dtype == dtype and got.shape == x.shape
    assert (got.double() - softmax_n_via_extra_logit(x, n, dim)).abs().max() <= tol


def test_softmax_n_defaults_are_softmax_1_on_last_dim(ops):
    x = torch.tensor([[-10.0, -10.0, -10.0]], dtype=torch.float64)
    assert torch.allclose(ops.softmax_n(x), torch.full_like(x, math.exp(-10) / (1 + 3 * math.exp(-10))))


def test_gradcheck_and_gradgradcheck(ops):
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.softmax_n(t, 1.0, -1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: ops.softmax_n(t, 1.0, 0), (x,))
    assert torch.autograd.gradcheck(lambda t: ops.clipped_softmax_n(t, 1.0, -0.1, 1.1, -1), (x,))


def test_masked_rows_are_zero_with_finite_grad(ops):
    x = torch.full((2, 4), -math.inf, dtype=torch.float32, requires_grad=True)
    for n in (0.0, 1.0):
        y = ops.softmax_n(x, n)
        assert torch.equal(y, torch.zeros_like(y))
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.isfinite(g).all()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("use_sink", [False, True])
def test_attention_gradcheck_and_sdpa(ops, causal, use_sink):
    q = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    sink = torch.randn(3, dtype=torch.float64, requires_grad=True) if use_sink else None
    inputs = (q, k, v) + ((sink,) if use_sink else ())
    fn = lambda q, k, v, s=None: ops.attention(q, k, v, None, s, 1.0, causal)
    assert torch.autograd.gradcheck(fn, inputs)
    if not use_sink:  # vanilla softmax against PyTorch's own SDPA, with our bottom-right causal rule as a mask
        mask = None
        if causal:
            lq, lk = q.shape[2], k.shape[2]
            mask = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert torch.allclose(ops.attention(q, k, v, None, None, 0.0, causal), ref, atol=1e-12)


def test_attention_lse_and_zero_key_identity(ops):
    q, k, v = (torch.randn(1, 2, 3, 4, dtype=torch.float64) for _ in range(3))
    out, lse = ops.attention_lse(q, k, v)
    kz = torch.cat([k, torch.zeros(1, 2, 1, 4, dtype=k.dtype)], 2)
    vz = torch.cat([v, torch.zeros(1, 2, 1, 4, dtype=v.dtype)], 2)
    ref = torch.nn.functional.scaled_dot_product_attention(q, kz, vz)
    assert torch.allclose(out, ref, atol=1e-12)
    scores = q @ kz.transpose(-1, -2) / 2.0
    assert torch.allclose(lse, torch.logsumexp(scores, -1), atol=1e-12)


def test_fused_attention_gradgradcheck_lse_and_inference_mode(ops):
    # Long enough for several query and key blocks of the fused kernel; float64 runs the same tiled algorithm.
    q = torch.randn(1, 2, 70, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 130, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, 130, 2, dtype=torch.float64, requires_grad=True)
    sink = torch.randn(2, dtype=torch.float64, requires_grad=True)
    both = lambda q, k, v, s: sum(t.sum() for t in ops.attention_lse(q, k, v, None, s, 1.0, True))
    assert torch.autograd.gradcheck(both, (q, k, v, sink))
    small = [t.detach()[..., :5, :].clone().requires_grad_() for t in (q, k, v)]
    assert torch.autograd.gradgradcheck(lambda q, k, v: ops.attention(q, k, v), small)
    with torch.inference_mode():
        out = ops.attention(q.float(), k.float(), v.float(), None, sink.float(), 1.0, True)
    ref = ops.attention(q, k, v, None, sink, 1.0, True)
    assert torch.allclose(out.double(), ref, atol=1e-5)


def test_gated_attention_on_top_of_the_fused_kernel(ops):
    # Gated attention (Bondarenko et al.): a per-head, per-token gate multiplies each head's output outside the kernel.
    q, k, v = (torch.randn(1, 2, 5, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    gate_logits = torch.randn(1, 2, 5, 1, dtype=torch.float64, requires_grad=True)
    fn = lambda q, k, v, g: ops.attention(q, k, v) * torch.sigmoid(g)
    assert torch.autograd.gradcheck(fn, (q, k, v, gate_logits))
    closed = ops.attention(q, k, v) * torch.sigmoid(torch.full_like(gate_logits, -1e4))
    assert closed.abs().max() == 0  # a fully closed gate silences the head


def test_clipped_attention_gradcheck(ops):
    q = torch.randn(1, 2, 6, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 2, 7, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(1, 2, 7, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda q, k, v: ops.clipped_attention(q, k, v, None, None, 1.0, -0.05, 1.05)
    assert torch.autograd.gradcheck(fn, (q, k, v))
    with pytest.raises(RuntimeError, match="gamma < eta"):
        ops.clipped_attention(q, k, v, None, None, 1.0, 1.0, 0.5)


def test_sparse_maps_gradcheck_and_identities(ops):
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    alpha = (1.3 + torch.rand(3, 1, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ops.sparsemax(t, -1), (x,))
    assert torch.autograd.gradcheck(lambda t: ops.entmax15(t, -1), (x,))
    assert torch.autograd.gradcheck(lambda t, a: ops.entmax_bisect(t, a, -1, 60), (x, alpha))
    assert torch.autograd.gradgradcheck(lambda t: ops.entmax15(t, 0), (x,))
    assert torch.autograd.gradgradcheck(lambda t, a: ops.entmax_bisect(t, a, -1, 60), (x, alpha))
    two = torch.tensor(2.0, dtype=torch.float64)
    assert torch.allclose(ops.entmax_bisect(x, two), ops.sparsemax(x), atol=1e-9)
    assert torch.allclose(ops.entmax_bisect(x, torch.tensor(1.5, dtype=torch.float64)), ops.entmax15(x), atol=1e-9)


def test_outlier_metrics_and_quantizers(ops):
    x = torch.randn(3, 4, 50, dtype=torch.float64)
    rows = x.reshape(3, -1)
    c = rows - rows.mean(1, keepdim=True)
    expected = c.pow(4).mean(1) / (rows.std(1).pow(4) + 1e-6)  # Pearson, unbiased std, as the paper computed it
    assert torch.allclose(ops.kurtosis(x), expected, atol=1e-12)
    assert torch.equal(ops.inf_norm(x), rows.abs().amax(1))
    q = ops.fake_quant_asym(torch.tensor([0.5, 1.5, 2.5]), 0.0, 255.0, 8)
    assert q.tolist() == [0.0, 2.0, 2.0]  # round half to even
    w = torch.randn(100, requires_grad=True)
    ops.fake_quant_sym(w, 4).sum().backward()
    assert torch.equal(w.grad, torch.ones(100))  # straight-through


def test_hopfield_ops(ops):
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    mem = torch.randn(10, 8, dtype=torch.float64, requires_grad=True)
    e = ops.hopfield_energy(x, mem, 0.5, 1.0)
    scores = 0.5 * x @ mem.T
    want = -torch.log1p(torch.exp(scores).sum(-1)) / 0.5 + 0.5 * (x * x).sum(-1)
    assert torch.allclose(e, want, atol=1e-12)
    state, steps = ops.hopfield_retrieve(x, mem, 0.5, 1.0, 3, 0.0)
    assert steps.dtype == torch.int64 and steps.tolist() == [3, 3, 3, 3]
    assert torch.autograd.gradcheck(lambda a, b: ops.hopfield_retrieve(a, b, 0.5, 1.0, 2, 0.0)[0], (x, mem))
    assert torch.autograd.gradcheck(lambda a, b: ops.hopfield_energy(a, b, 0.5, 1.0), (x, mem))


def test_errors_are_clear(ops):
    with pytest.raises(RuntimeError, match="n \\(the no-op mass\\) must be finite and >= 0"):
        ops.softmax_n(torch.randn(3), -1.0)
    with pytest.raises(RuntimeError, match="q must be 4-D"):
        ops.attention(torch.randn(3, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4))
    with pytest.raises(RuntimeError, match="pattern dims differ"):
        ops.hopfield_retrieve(torch.randn(2, 3), torch.randn(4, 5), 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA kernels are compile-checked only")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_softmax_n_cuda_matches_cpu(ops, dtype):
    x = (torch.randn(64, 1000, dtype=torch.float64) * 5).to(dtype)
    x[0] = -math.inf            # fully masked row
    x[1, 3] = math.nan          # poisoned row
    x[2, :7] = -1e4             # extreme logits
    x[3, 5] = math.inf          # +inf takes the mass
    for n in (0.0, 1.0):
        for dim in (-1, 0):
            got = ops.softmax_n(x.cuda(), n, dim).cpu()
            want = ops.softmax_n(x, n, dim)
            assert torch.allclose(got.double(), want.double(), atol=2e-6 if dtype != torch.bfloat16 else 8e-3,
                                  equal_nan=True)
    xg = torch.randn(5, 300, dtype=torch.float64, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.softmax_n(t, 1.0, -1), (xg,))
