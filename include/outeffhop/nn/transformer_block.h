// Transformer blocks (pre-LN or post-LN; encoder, causal decoder, optional cross-attention) whose token mixer is any
// attention variant or a Hopfield layer. Parameter names follow Hugging Face's OPT: self_attn, self_attn_layer_norm,
// encoder_attn, encoder_attn_layer_norm, fc1, fc2, final_layer_norm (a Hopfield mixer is `hopfield`).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <optional>

#include "outeffhop/nn/hopfield.h"
#include "outeffhop/nn/multihead_attention.h"

namespace outeffhop::nn {

enum class NormPosition {
  kPre,   // x + f(LN(x)) (OPT, ViT)
  kPost,  // LN(x + f(x)) (BERT)
};

struct TransformerBlockOptions {
  int64_t d_model = 0;
  int64_t num_heads = 1;
  int64_t d_ff = 0;
  AttentionVariant variant;            // the self-attention (and cross-attention) variant
  NormPosition norm = NormPosition::kPre;
  std::string activation = "relu";     // relu (OPT) or gelu (BERT, ViT)
  double dropout = 0.0;                // on the residual branches
  double attention_dropout = 0.0;      // on the attention probabilities (training)
  double layer_norm_eps = 1e-5;
  bool cross_attention = false;        // a decoder block attending to an encoder's output
  // When set, the token mixer is a Hopfield layer in self-association (stored = state = projection = x) instead of
  // multi-head attention; input_size must equal d_model.
  std::optional<HopfieldOptions> hopfield;
};

class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(TransformerBlockOptions options);

  // x: B x T x d_model. key_padding_mask: bool B x T, true = keep (Hugging Face's attention_mask convention).
  // causal: token t sees tokens <= t. memory: B x S x d_model for cross-attention, memory_padding_mask: bool B x S.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding_mask = {}, bool causal = false,
                     const at::Tensor& memory = {}, const at::Tensor& memory_padding_mask = {});

  const TransformerBlockOptions& options() const { return options_; }

  // Activation points under `prefix` (the block's own name plus "."): the LayerNorm outputs (self_attn_layer_norm,
  // encoder_attn_layer_norm, final_layer_norm), the attention's points (self_attn.*, encoder_attn.*), fc1,
  // activation_fn, fc2, the residual sums self_attn_residual / encoder_attn_residual, and the block output under the
  // block's name itself. A Hopfield mixer exposes no inner points.
  void set_activation_points(ActivationPointsPtr points, std::string prefix);

 private:
  at::Tensor mix(const at::Tensor& x, const at::Tensor& key_padding_mask, bool causal);
  at::Tensor feed_forward(const at::Tensor& x);
  // Pre-LN: x + f(norm(x)); post-LN: norm(x + f(x)); the norm output passes `norm_point`, the sum `sum_point`.
  at::Tensor residual(const at::Tensor& x, torch::nn::LayerNorm& norm, const std::string& norm_point,
                      const std::string& sum_point, const std::function<at::Tensor(const at::Tensor&)>& f);

  TransformerBlockOptions options_;
  MultiheadAttention self_attn_{nullptr}, encoder_attn_{nullptr};
  Hopfield hopfield_{nullptr};
  torch::nn::LayerNorm self_attn_layer_norm_{nullptr}, encoder_attn_layer_norm_{nullptr}, final_layer_norm_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  PointsHandle points_;
};
TORCH_MODULE(TransformerBlock);

}  // namespace outeffhop::nn
