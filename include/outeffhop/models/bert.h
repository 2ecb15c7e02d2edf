// BERT for masked-language modelling (Devlin et al. 2019, as Hugging Face's BertForMaskedLM): token, position and
// segment embeddings summed and LayerNorm-ed, post-LN encoder layers of any attention variant (GELU FFN), and the MLM
// head (dense -> GELU -> LayerNorm -> decoder tied to the token embeddings, plus a bias). Parameter names follow
// Hugging Face (bert.embeddings.word_embeddings, bert.encoder.layer.N.attention.self.query, cls.predictions.bias, ...).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "outeffhop/nn/activation_points.h"
#include "outeffhop/nn/attention_variant.h"

namespace outeffhop::models {

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t d_model = 128;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t d_ff = 512;
  int64_t max_positions = 512;
  int64_t type_vocab_size = 2;
  double dropout = 0.0;
  double attention_dropout = 0.0;
  double layer_norm_eps = 1e-12;
  double init_std = 0.02;  // N(0, std) weights, zero biases, LayerNorm (1, 0): Hugging Face's init
  nn::AttentionVariant variant;
};

class BertForMaskedLMImpl : public torch::nn::Module {
 public:
  explicit BertForMaskedLMImpl(BertConfig config);

  // ids, token_type_ids: B x T int64 (token_type_ids undefined: all segment 0); attention_mask: B x T bool or
  // integer, true / 1 = a real token (undefined: every token). Returns MLM logits B x T x vocab_size, or with
  // `predict` (B x T bool) only those positions' logits, N x vocab_size in row-major order: the vocabulary-sized head
  // is most of a small BERT's cost, and training needs it at the masked tokens alone.
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& token_type_ids = {}, const at::Tensor& attention_mask = {},
                     const at::Tensor& predict = {});

  // Activation points: bert.embeddings.{word_embeddings,position_embeddings,token_type_embeddings} (the lookups),
  // bert.embeddings.sum, bert.embeddings.LayerNorm, and every layer's under bert.encoder.layer.N. The MLM head is
  // kept in float under quantization and passes no points.
  void set_activation_points(nn::ActivationPointsPtr points);

  const BertConfig& config() const { return config_; }

 private:
  BertConfig config_;
  std::shared_ptr<torch::nn::Module> bert_, embeddings_, encoder_, cls_, predictions_, transform_;  // name scopes
  torch::nn::Embedding word_embeddings_{nullptr}, position_embeddings_{nullptr}, token_type_embeddings_{nullptr};
  torch::nn::LayerNorm embeddings_norm_{nullptr}, transform_norm_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::Linear transform_dense_{nullptr};
  at::Tensor decoder_bias_;  // cls.predictions.bias
  torch::nn::Dropout dropout_{nullptr};
  nn::PointsHandle points_;
};
TORCH_MODULE(BertForMaskedLM);

}  // namespace outeffhop::models
