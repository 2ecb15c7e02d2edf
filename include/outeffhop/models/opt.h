// An OPT-style decoder-only language model (Zhang et al. 2022, as Hugging Face's OPTForCausalLM): token embeddings,
// learned positions with offset 2, pre-LN blocks (ReLU FFN, causal self-attention of any variant), a final LayerNorm
// and an LM head tied to the token embeddings. Parameter names follow Hugging Face (model.decoder.layers.N.fc1, ...).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include "outeffhop/nn/activation_points.h"
#include "outeffhop/nn/attention_variant.h"

namespace outeffhop::models {

struct OptConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 128;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t d_ff = 512;
  int64_t max_positions = 512;  // longest sequence; the position table has max_positions + 2 rows (OPT's offset)
  double dropout = 0.0;
  double attention_dropout = 0.0;
  double init_std = 0.02;  // N(0, std) for Linear and Embedding weights, zero biases (Hugging Face's OPT init)
  nn::AttentionVariant variant;
};

class OptForCausalLMImpl : public torch::nn::Module {
 public:
  explicit OptForCausalLMImpl(OptConfig config);

  // ids: B x T int64 token ids, T <= max_positions. Returns logits B x T x vocab_size.
  at::Tensor forward(const at::Tensor& ids);
  // Mean next-token cross-entropy (nats) of a B x T batch: positions 0..T-2 predict tokens 1..T-1.
  at::Tensor loss(const at::Tensor& ids);

  // Activation points: model.decoder.embed_tokens, .embed_positions, .embeddings (their sum), every block's points
  // under model.decoder.layers.N., and model.decoder.final_layer_norm.
  void set_activation_points(nn::ActivationPointsPtr points);

  const OptConfig& config() const { return config_; }

 private:
  OptConfig config_;
  std::shared_ptr<torch::nn::Module> model_, decoder_;  // name scopes "model" and "model.decoder"
  torch::nn::Embedding embed_tokens_{nullptr}, embed_positions_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm final_layer_norm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  nn::PointsHandle points_;
};
TORCH_MODULE(OptForCausalLM);

}  // namespace outeffhop::models
