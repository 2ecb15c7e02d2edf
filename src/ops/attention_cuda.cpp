// Host side of the fused CUDA attention: which inputs the tensor-core kernels take, tensors to kernel params on the
// current stream, and the parts of the backward that are cheap elementwise work (row_dot, dQ scaling, sink gradient).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>
#include <limits>

#include "../core/attention_checks.h"
#include "../kernels/cuda/attention_kernel.cuh"
#include "attention_fused.h"

namespace outeffhop::detail {
namespace {

namespace cuda = kernels::cuda;

// Rows the kernels can stream with 16-byte copies: last dim contiguous, row/head/batch strides and the base pointer
// aligned to 8 half-precision elements.
at::Tensor aligned_rows(const at::Tensor& t) {
  const bool ok = t.stride(3) == 1 && t.stride(2) % 8 == 0 && t.stride(1) % 8 == 0 && t.stride(0) % 8 == 0 &&
                  reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  return ok ? t : t.contiguous();
}

void set_rows(const at::Tensor& t, const void*& data, int64_t (&stride)[3]) {
  data = t.data_ptr();
  for (int d = 0; d < 3; ++d) stride[d] = t.stride(d);
}

// Tensors the params point into; kept alive until the kernels are queued.
struct Prepared {
  at::Tensor q, k, v, mask, sink;
};

cuda::FlashAttentionParams make_params(const AttentionArgs& a, Prepared& keep) {
  keep.q = aligned_rows(a.q);
  keep.k = aligned_rows(a.k);
  keep.v = aligned_rows(a.v);
  cuda::FlashAttentionParams p;
  set_rows(keep.q, p.q, p.q_stride);
  set_rows(keep.k, p.k, p.k_stride);
  set_rows(keep.v, p.v, p.v_stride);
  p.B = static_cast<int>(a.q.size(0)), p.H = static_cast<int>(a.q.size(1));
  p.Lq = static_cast<int>(a.q.size(2)), p.Lk = static_cast<int>(a.k.size(2)), p.D = static_cast<int>(a.q.size(3));
  if (a.attn_mask) {
    // Additive float32 logits in the mask's own shape; expand() broadcasts with stride 0.
    const auto& m = *a.attn_mask;
    const auto additive = m.scalar_type() == at::kBool
                              ? at::where(m, 0.0, -std::numeric_limits<double>::infinity()).to(at::kFloat)
                              : m.to(at::kFloat);
    keep.mask = additive.expand({p.B, p.H, p.Lq, p.Lk});
    p.mask = keep.mask.data_ptr<float>();
    for (int d = 0; d < 4; ++d) p.mask_stride[d] = keep.mask.stride(d);
  }
  if (a.sink) {
    keep.sink = a.sink->to(at::kFloat).contiguous();
    p.sink = keep.sink.data_ptr<float>();
  }
  p.no_op_logit = a.n > 0 ? static_cast<float>(std::log(a.n)) : -std::numeric_limits<float>::infinity();
  p.causal = a.causal;
  p.scale = static_cast<float>(attention_scale(a.q, a.scale));
  return p;
}

cuda::HalfType half_type(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf ? cuda::HalfType::kFloat16 : cuda::HalfType::kBFloat16;
}

}  // namespace

bool cuda_fused_attention_supports(const AttentionArgs& a) {
  const auto type = a.q.scalar_type();
  const int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  return (type == at::kHalf || type == at::kBFloat16) && !a.clipped && a.q.size(3) == a.v.size(3) &&
         cuda::flash_attention_supports_head_dim(static_cast<int>(a.q.size(3))) &&
         a.q.size(0) * a.q.size(1) <= kMaxInt && a.q.size(2) <= 65535LL * 64 && a.k.size(2) <= 65535LL * 64;
}

FusedForward cuda_fused_attention_forward(const AttentionArgs& a) {
  TORCH_CHECK(cuda_fused_attention_supports(a), "attention: the fused CUDA kernel does not take these inputs");
  const c10::cuda::CUDAGuard guard(a.q.device());
  Prepared keep;
  auto p = make_params(a, keep);
  FusedForward f;
  f.out = at::empty({a.q.size(0), a.q.size(1), a.q.size(2), a.v.size(3)}, a.q.options());
  f.lse = at::empty({a.q.size(0), a.q.size(1), a.q.size(2)}, a.q.options().dtype(at::kFloat));
  p.out = f.out.data_ptr();
  p.lse = f.lse.data_ptr<float>();
  cuda::flash_attention_forward(p, half_type(a.q), at::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return f;
}

FusedGrads cuda_fused_attention_backward(const AttentionArgs& a, const at::Tensor& grad_out,
                                         const at::Tensor& grad_lse, const at::Tensor& out, const at::Tensor& lse) {
  TORCH_CHECK(grad_out.sizes() == out.sizes(), "attention backward: grad_out has shape ", grad_out.sizes(),
              ", expected ", out.sizes());
  const c10::cuda::CUDAGuard guard(a.q.device());
  Prepared keep;
  cuda::FlashAttentionBackwardParams g;
  g.fwd = make_params(a, keep);
  const auto lse_f = lse.to(at::kFloat).contiguous();
  g.fwd.lse = const_cast<float*>(lse_f.data_ptr<float>());  // read-only in the backward kernel
  const auto dout = grad_out.to(a.q.scalar_type()).contiguous();
  // row_dot = rowsum(dO * O) - dL/dlse, in float32 from the stored (rounded) output, as the kernel's P uses.
  auto row_dot = (dout.to(at::kFloat) * out.to(at::kFloat)).sum(-1);
  if (grad_lse.defined()) row_dot = row_dot - grad_lse.to(at::kFloat);
  row_dot = row_dot.contiguous();
  auto dq_accum = at::zeros(a.q.sizes(), a.q.options().dtype(at::kFloat));
  auto dk = at::empty(a.k.sizes(), a.q.options());
  auto dv = at::empty(a.v.sizes(), a.q.options());
  g.grad_out = dout.data_ptr();
  g.row_dot = row_dot.data_ptr<float>();
  g.grad_q_accum = dq_accum.data_ptr<float>();
  g.grad_k = dk.data_ptr();
  g.grad_v = dv.data_ptr();
  cuda::flash_attention_backward(g, half_type(a.q), at::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  FusedGrads grads{(dq_accum * g.fwd.scale).to(a.q.scalar_type()), dk, dv, {}};
  if (a.sink) grads.sink = sink_gradient(*a.sink, lse_f, row_dot);
  return grads;
}

}  // namespace outeffhop::detail
