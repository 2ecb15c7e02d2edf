// Multi-head attention with the softmax family (outeffhop::attention / attention_lse ops).
#pragma once
#include <ATen/core/Tensor.h>
#include <functional>
#include <optional>
#include <tuple>
#include <utility>

namespace outeffhop {

struct AttentionOptions {
  std::optional<at::Tensor> attn_mask;  // additive float or bool (true = keep), broadcastable to B x H x Lq x Lk
  std::optional<at::Tensor> sink;       // per-head logits [H]; replaces n by exp(sink_h) when given
  double n = 1.0;                       // no-op mass: 1 = softmax_1 (OutEffHop), 0 = vanilla softmax
  bool causal = false;                  // bottom-right aligned: query i sees keys j <= i + (Lk - Lq)
  std::optional<double> scale;          // default 1 / sqrt(D)
};

// q: B x H x Lq x D, k: B x H x Lk x D, v: B x H x Lk x Dv -> B x H x Lq x Dv.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& opt = {});

// Also returns lse: B x H x Lq, the log of the full normaliser log(n + sum_j exp(s_j)) (sink included);
// -inf for a fully masked row with n = 0.
std::tuple<at::Tensor, at::Tensor> attention_lse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const AttentionOptions& opt = {});

// Clipped softmax_n attention: P = clip((eta - gamma) softmax_n(S) + gamma, 0, 1) on kept keys (hidden keys give 0),
// out = P V. Bondarenko et al.'s clipped softmax for n = 0; "clipped OutEffHop" for n = 1. Needs gamma < eta.
at::Tensor clipped_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double gamma, double eta,
                             const AttentionOptions& opt = {});

// The attention probabilities B x H x Lq x Lk that attention / clipped_attention (clip = (gamma, eta)) multiply V
// with, materialised by plain differentiable ATen ops: for analysis, attention dropout and tests. `scores_transform`,
// when given, sees (and may replace) the scaled scores q k^T * scale before the mask: a point for quantization.
at::Tensor attention_probabilities(const at::Tensor& q, const at::Tensor& k, const AttentionOptions& opt = {},
                                   std::optional<std::pair<double, double>> clip = std::nullopt,
                                   const std::function<at::Tensor(const at::Tensor&)>& scores_transform = nullptr);

// The scaled scores q k^T * scale (B x H x Lq x Lk) with the mask and the causal rule applied (hidden entries -inf),
// as attention_probabilities computes them: the input of any other probability map (sparsemax, entmax).
at::Tensor attention_scores(const at::Tensor& q, const at::Tensor& k, const AttentionOptions& opt = {},
                            const std::function<at::Tensor(const at::Tensor&)>& scores_transform = nullptr);

namespace reference {
// float64 oracle through the identity: softmax_n attention = softmax attention over [K; 0], [V; 0] whose extra key
// has logit log n (or sink_h). Returns (out, lse).
std::tuple<at::Tensor, at::Tensor> attention_via_zero_key(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const AttentionOptions& opt = {});
}  // namespace reference

}  // namespace outeffhop
