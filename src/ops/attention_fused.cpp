// Host side of the fused CPU attention: tensors to kernel params, parallel launch over tasks, sink gradient.
#include "attention_fused.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "../core/attention_checks.h"
#include "../kernels/cpu/attention_kernel.h"
#include "rows.h"

namespace outeffhop::detail {
namespace {

namespace cpu = kernels::cpu;

// The compute-dtype copy of an input whose last dimension is contiguous (views along other dims are kept).
at::Tensor kernel_layout(const at::Tensor& t, at::ScalarType type) {
  auto r = t.to(type);
  return r.stride(-1) == 1 ? r : r.contiguous();
}

kernels::RowStrides row_strides(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

// Tensors the params point into; kept alive for the kernel's duration.
struct Prepared {
  at::Tensor q, k, v, mask, sink;
};

template <typename T>
kernels::AttentionParams<T> make_params(const AttentionArgs& a, Prepared& keep) {
  const auto type = compute_type(a.q);
  keep.q = kernel_layout(a.q, type);
  keep.k = kernel_layout(a.k, type);
  keep.v = kernel_layout(a.v, type);
  kernels::AttentionParams<T> p;
  p.q = keep.q.data_ptr<T>();
  p.k = keep.k.data_ptr<T>();
  p.v = keep.v.data_ptr<T>();
  p.q_stride = row_strides(keep.q);
  p.k_stride = row_strides(keep.k);
  p.v_stride = row_strides(keep.v);
  p.B = a.q.size(0), p.H = a.q.size(1), p.Lq = a.q.size(2), p.Lk = a.k.size(2), p.D = a.q.size(3);
  p.Dv = a.v.size(3);
  if (a.attn_mask) {
    const bool keep_flags = a.attn_mask->scalar_type() == at::kBool;
    // expand() broadcasts with stride 0: the kernel reads the mask in place, never B x H x Lq x Lk of it.
    keep.mask = (keep_flags ? *a.attn_mask : a.attn_mask->to(type)).expand({p.B, p.H, p.Lq, p.Lk});
    for (int d = 0; d < 4; ++d) p.mask_stride[d] = keep.mask.stride(d);
    if (keep_flags)
      p.mask_keep = keep.mask.data_ptr<bool>();
    else
      p.mask_add = keep.mask.data_ptr<T>();
  }
  if (a.sink) {
    keep.sink = a.sink->to(type).contiguous();
    p.sink = keep.sink.data_ptr<T>();
  }
  p.log_n = a.n > 0 ? std::log(a.n) : -std::numeric_limits<double>::infinity();
  p.causal = a.causal;
  p.scale = attention_scale(a.q, a.scale);
  p.clipped = a.clipped;
  p.gamma = a.gamma;
  p.eta = a.eta;
  return p;
}

bool use_reference(std::optional<AttentionKernel> kernel) {
  return (kernel && *kernel == AttentionKernel::kReference) || !cpu::tiled_attention_supported();
}

}  // namespace

bool fused_attention_supports(const AttentionArgs& args) {
  return args.q.device().is_cpu() || (args.q.device().is_cuda() && cuda_fused_attention_supports(args));
}

FusedForward fused_attention_forward(const AttentionArgs& args, std::optional<AttentionKernel> kernel) {
  if (args.q.device().is_cuda()) return cuda_fused_attention_forward(args);
  TORCH_CHECK(args.q.device().is_cpu(), "attention: the fused kernel runs on CPU tensors, got ", args.q.device());
  const auto type = compute_type(args.q);
  const auto& q = args.q;
  FusedForward f;
  f.out = at::empty({q.size(0), q.size(1), q.size(2), args.v.size(3)}, q.options().dtype(type));
  f.lse = at::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(type));
  AT_DISPATCH_FLOATING_TYPES(type, "fused_attention_forward", [&] {
    Prepared keep;
    auto p = make_params<scalar_t>(args, keep);
    p.out = f.out.data_ptr<scalar_t>();
    p.lse = f.lse.data_ptr<scalar_t>();
    if (use_reference(kernel)) {
      at::parallel_for(0, p.B * p.H, 1, [&](int64_t b, int64_t e) { cpu::attention_forward_reference(p, b, e); });
    } else {
      at::parallel_for(0, cpu::attention_forward_tasks(p), 1,
                       [&](int64_t b, int64_t e) { cpu::attention_forward(p, b, e); });
    }
  });
  return f;
}

FusedGrads fused_attention_backward(const AttentionArgs& args, const at::Tensor& grad_out, const at::Tensor& grad_lse,
                                    const at::Tensor& out, const at::Tensor& lse,
                                    std::optional<AttentionKernel> kernel) {
  if (args.q.device().is_cuda()) return cuda_fused_attention_backward(args, grad_out, grad_lse, out, lse);
  const auto type = out.scalar_type();
  TORCH_CHECK(grad_out.sizes() == out.sizes(), "attention backward: grad_out has shape ", grad_out.sizes(),
              ", expected ", out.sizes());
  const auto dout = grad_out.to(type).contiguous();
  const auto dlse = grad_lse.defined() ? grad_lse.to(type).contiguous() : at::Tensor();
  auto row_dot = at::empty_like(lse);
  auto dq = at::empty(args.q.sizes(), out.options());
  auto dk = at::empty(args.k.sizes(), out.options());
  auto dv = at::empty(args.v.sizes(), out.options());
  AT_DISPATCH_FLOATING_TYPES(type, "fused_attention_backward", [&] {
    Prepared keep;
    kernels::AttentionBackwardParams<scalar_t> g;
    g.fwd = make_params<scalar_t>(args, keep);
    const auto out_c = out.contiguous(), lse_c = lse.contiguous();
    g.fwd.out = const_cast<scalar_t*>(out_c.data_ptr<scalar_t>());  // read-only in the backward kernels
    g.fwd.lse = const_cast<scalar_t*>(lse_c.data_ptr<scalar_t>());
    g.grad_out = dout.data_ptr<scalar_t>();
    if (dlse.defined()) g.grad_lse = dlse.data_ptr<scalar_t>();
    g.row_dot = row_dot.data_ptr<scalar_t>();
    g.grad_q = dq.data_ptr<scalar_t>();
    g.grad_k = dk.data_ptr<scalar_t>();
    g.grad_v = dv.data_ptr<scalar_t>();
    const bool reference = use_reference(kernel);
    at::parallel_for(0, g.fwd.B * g.fwd.H, 1, [&](int64_t b, int64_t e) {
      reference ? cpu::attention_backward_reference(g, b, e) : cpu::attention_backward(g, b, e);
    });
  });
  FusedGrads grads{dq.to(args.q.scalar_type()), dk.to(args.k.scalar_type()), dv.to(args.v.scalar_type()), {}};
  if (args.sink) grads.sink = sink_gradient(*args.sink, lse, row_dot);
  return grads;
}

at::Tensor sink_gradient(const at::Tensor& sink, const at::Tensor& lse, const at::Tensor& row_dot) {
  // d lse / d s_h = the no-op key's probability exp(s_h - lse); each row pulls with -row_dot.
  const auto s = sink.to(lse.scalar_type()).view({1, -1, 1});
  const auto null_prob = at::where(at::isneginf(lse), at::zeros_like(lse), at::exp(s - lse));
  return (-(null_prob * row_dot)).sum(at::IntArrayRef{0, 2}).to(sink.scalar_type());
}

}  // namespace outeffhop::detail
