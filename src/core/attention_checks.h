// Argument checks of the attention op family, shared by the composite and the fused implementations.
#pragma once
#include <ATen/core/Tensor.h>
#include <optional>

namespace outeffhop::detail {

// q: B x H x Lq x D, k: B x H x Lk x D, v: B x H x Lk x Dv; mask broadcastable to B x H x Lq x Lk; sink: H.
void check_attention_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& sink, double n,
                          std::optional<double> scale);

// The logit scale: the given one, else 1 / sqrt(D).
double attention_scale(const at::Tensor& q, std::optional<double> scale);

}  // namespace outeffhop::detail
