// The fused CPU attention kernels behind the attention op family: argument preparation (dtype, layout, mask
// broadcast), the parallel launch, and the sink gradient. Inputs are checked by the caller (check_attention_args).
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
  at::Tensor out;  // B x H x Lq x Dv, compute dtype (float32, or float64 for float64 inputs)
  at::Tensor lse;  // B x H x Lq, compute dtype
};

struct FusedGrads {
  at::Tensor q, k, v, sink;  // in the inputs' dtypes; sink undefined when args.sink is empty
};

// The tiled kernel unless `kernel` says otherwise (or this CPU cannot run it).
FusedForward fused_attention_forward(const AttentionArgs& args, std::optional<AttentionKernel> kernel = {});

// out and lse from fused_attention_forward; grad_out: B x H x Lq x Dv; grad_lse (B x H x Lq) may be undefined.
FusedGrads fused_attention_backward(const AttentionArgs& args, const at::Tensor& grad_out, const at::Tensor& grad_lse,
                                    const at::Tensor& out, const at::Tensor& lse,
                                    std::optional<AttentionKernel> kernel = {});

}  // namespace outeffhop::detail
