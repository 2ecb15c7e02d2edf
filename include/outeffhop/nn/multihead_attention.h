// Multi-head attention with any variant of attention_variant.h. Projections are named like Hugging Face's OPT
// (q_proj, k_proj, v_proj, out_proj) or BERT/ViT (query, key, value; the output dense layer lives in the caller's
// block), so checkpoints map one to one; gates are `alpha.{h}` as in Bondarenko et al.'s code, the sink is `sink`,
// entmax_alpha's per-head logits are `entmax_alpha_logit`.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "outeffhop/attention.h"
#include "outeffhop/nn/activation_points.h"
#include "outeffhop/nn/attention_variant.h"

namespace outeffhop::nn {

struct ProjectionNames {
  std::string query, key, value, out;  // out empty: no output projection inside this module
  static ProjectionNames opt() { return {"q_proj", "k_proj", "v_proj", "out_proj"}; }
  static ProjectionNames bert() { return {"query", "key", "value", ""}; }
};

struct MultiheadAttentionOptions {
  int64_t embed_dim = 0;
  int64_t num_heads = 1;
  AttentionVariant variant;
  double dropout = 0.0;          // on the attention probabilities, in training (then the L x L scores are materialised)
  bool bias = true;
  int64_t kv_dim = 0;            // width of the key/value source for cross-attention; 0 = embed_dim
  ProjectionNames names = ProjectionNames::opt();
};

class MultiheadAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiheadAttentionImpl(MultiheadAttentionOptions options);

  // query: B x Tq x E. key_value: B x Tk x kv_dim, or undefined for self-attention. key_padding_mask: B x Tk bool,
  // true = keep. attn_mask: bool (true = keep) or additive, broadcastable to B x H x Tq x Tk. causal: bottom-right
  // aligned. Returns B x Tq x E.
  at::Tensor forward(const at::Tensor& query, const at::Tensor& key_value = {}, const at::Tensor& key_padding_mask = {},
                     const at::Tensor& attn_mask = {}, bool causal = false);

  // The attention probabilities B x H x Tq x Tk the forward uses (materialised; for analysis and tests).
  at::Tensor probabilities(const at::Tensor& query, const at::Tensor& key_value = {},
                           const at::Tensor& key_padding_mask = {}, const at::Tensor& attn_mask = {},
                           bool causal = false);

  const MultiheadAttentionOptions& options() const { return options_; }

  // Activation points, named prefix + q_proj / k_proj / v_proj / attn_scores / attn_probs / context / out_proj (the
  // projections by their names in `options().names`; attn_scores are the scaled scores before the mask). With a
  // transform attached the scores and probabilities are materialised and pass their points (the fused kernels never
  // expose them). Gated attention's gates (B x H x T x 1, in (0, 1)) are observed as attn_gates, never transformed.
  void set_activation_points(ActivationPointsPtr points, std::string prefix);

 private:
  struct Heads {
    at::Tensor q, k, v;            // B x H x T x Dh (views of the projections)
    std::optional<at::Tensor> mask;
  };
  Heads project(const at::Tensor& query, const at::Tensor& key_value, const at::Tensor& key_padding_mask,
                const at::Tensor& attn_mask);
  at::Tensor eager_probabilities(const Heads& heads, bool causal);
  AttentionOptions op_options(const Heads& heads, bool causal) const;  // the variant as attention-op options
  std::optional<std::pair<double, double>> clip() const;               // (gamma, eta) of a clipped variant
  at::Tensor gate(const at::Tensor& query, const at::Tensor& heads_out);

  MultiheadAttentionOptions options_;
  int64_t head_dim_ = 0;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, out_{nullptr};
  at::Tensor sink_;
  at::Tensor entmax_alpha_logit_;  // H, entmax_alpha only: alpha_h = 1 + sigmoid(a_h)
  torch::nn::ModuleList alpha_{nullptr};
  std::vector<torch::nn::AnyModule> gates_;  // the modules of alpha_, callable
  PointsHandle points_;
};
TORCH_MODULE(MultiheadAttention);

}  // namespace outeffhop::nn
