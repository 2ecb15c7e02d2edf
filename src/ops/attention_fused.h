// The fused attention kernels behind the attention op family (CPU, and CUDA where built): argument preparation
// (dtype, layout, mask broadcast), the launch, and the sink gradient. Inputs are checked by the caller
// (check_attention_args).
#pragma once
#include <ATen/core/Tensor.h>
#include <optional>

namespace outeffhop::detail {

enum class AttentionKernel { kTiled, kReference };

struct AttentionArgs {
  at::Tensor q, k, v;                  // B x H x Lq x D, B x H x Lk x D, B x H x Lk x Dv
  std::optional<at::Tensor> attn_mask;  // bool (true = keep) or additive, broadcastable to B x H x Lq x Lk
  std::optional<at::Tensor> sink;       // H
  double n = 1.0;
  bool causal = false;
  std::optional<double> scale;
  bool clipped = false;  // clipped softmax_n with gamma, eta
  double gamma = 0.0, eta = 1.0;
};

struct FusedForward {
  // CPU: the compute dtype (float32, or float64 for float64 inputs); CUDA: out in the inputs' dtype, lse float32.
  at::Tensor out;  // B x H x Lq x Dv
  at::Tensor lse;  // B x H x Lq
};

struct FusedGrads {
  at::Tensor q, k, v, sink;  // in the inputs' dtypes; sink undefined when args.sink is empty
};

// Whether a fused kernel takes these arguments: CPU always; CUDA for what cuda_fused_attention_supports says.
bool fused_attention_supports(const AttentionArgs& args);

// The CUDA kernel when q is on a GPU; on CPU the tiled kernel unless `kernel` says otherwise (or this CPU cannot run
// it).
FusedForward fused_attention_forward(const AttentionArgs& args, std::optional<AttentionKernel> kernel = {});

// out and lse from fused_attention_forward; grad_out: B x H x Lq x Dv; grad_lse (B x H x Lq) may be undefined.
FusedGrads fused_attention_backward(const AttentionArgs& args, const at::Tensor& grad_out, const at::Tensor& grad_lse,
                                    const at::Tensor& out, const at::Tensor& lse,
                                    std::optional<AttentionKernel> kernel = {});

// dL/dsink (H) from the forward's lse and the backward's row_dot (both B x H x Lq, one dtype).
at::Tensor sink_gradient(const at::Tensor& sink, const at::Tensor& lse, const at::Tensor& row_dot);

// The CUDA kernels (attention_cuda.cpp; attention_no_cuda.cpp in builds without the toolkit): float16/bfloat16,
// D = Dv in {64, 128}, not clipped; other CUDA inputs take the composite.
bool cuda_fused_attention_supports(const AttentionArgs& args);
FusedForward cuda_fused_attention_forward(const AttentionArgs& args);
FusedGrads cuda_fused_attention_backward(const AttentionArgs& args, const at::Tensor& grad_out,
                                         const at::Tensor& grad_lse, const at::Tensor& out, const at::Tensor& lse);

}  // namespace outeffhop::detail
