// OPT-style decoder-only language model (see opt.h).
#include "outeffhop/models/opt.h"

#include <torch/nn/functional/loss.h>

#include "check_ids.h"
#include "init_weights.h"
#include "outeffhop/nn/transformer_block.h"

namespace outeffhop::models {
namespace {

constexpr int64_t kPositionOffset = 2;  // OPT's learned positions start at row 2

}  // namespace

OptForCausalLMImpl::OptForCausalLMImpl(OptConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  TORCH_CHECK(c.vocab_size > 0 && c.d_model > 0 && c.num_layers >= 0 && c.d_ff > 0 && c.max_positions > 0,
              "OptForCausalLM: vocab_size, d_model, d_ff and max_positions must be > 0 and num_layers >= 0");
  model_ = register_module("model", std::make_shared<torch::nn::Module>());
  decoder_ = model_->register_module("decoder", std::make_shared<torch::nn::Module>());
  embed_tokens_ = decoder_->register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.d_model));
  embed_positions_ =
      decoder_->register_module("embed_positions", torch::nn::Embedding(c.max_positions + kPositionOffset, c.d_model));
  layers_ = decoder_->register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    nn::TransformerBlockOptions b;
    b.d_model = c.d_model, b.num_heads = c.num_heads, b.d_ff = c.d_ff, b.variant = c.variant;
    b.norm = nn::NormPosition::kPre, b.activation = "relu";
    b.dropout = c.dropout, b.attention_dropout = c.attention_dropout;
    layers_->push_back(nn::TransformerBlock(b));
  }
  final_layer_norm_ = decoder_->register_module("final_layer_norm", torch::nn::LayerNorm(
                                                                         torch::nn::LayerNormOptions({c.d_model})));
  dropout_ = register_module("dropout", torch::nn::Dropout(c.dropout));
  init_transformer_weights(*this, c.init_std);
}

at::Tensor OptForCausalLMImpl::forward(const at::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong, "OptForCausalLM: ids must be int64 B x T, got ",
              ids.scalar_type(), " ", ids.sizes());
  const int64_t T = ids.size(1);
  TORCH_CHECK(T >= 1 && T <= config_.max_positions, "OptForCausalLM: sequence length ", T, " outside [1, ",
              config_.max_positions, "]");
  check_ids_in_range(ids, config_.vocab_size, "OptForCausalLM: token ids");
  const auto positions = at::arange(kPositionOffset, T + kPositionOffset, ids.options());
  const auto tokens = points_.pass("embed_tokens", embed_tokens_->forward(ids));
  const auto pos = points_.pass("embed_positions", embed_positions_->forward(positions));
  auto h = dropout_->forward(points_.pass("embeddings", tokens + pos));
  for (const auto& layer : *layers_) h = layer->as<nn::TransformerBlock>()->forward(h, {}, /*causal=*/true);
  h = points_.pass("final_layer_norm", final_layer_norm_->forward(h));
  return at::matmul(h, embed_tokens_->weight.t());  // the LM head, tied; kept in float under quantization
}

at::Tensor OptForCausalLMImpl::loss(const at::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2 && ids.size(1) >= 2, "OptForCausalLM::loss: need B x T ids with T >= 2, got ",
              ids.sizes());
  const auto logits = forward(ids.slice(1, 0, -1));
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                              ids.slice(1, 1).reshape({-1}));
}

void OptForCausalLMImpl::set_activation_points(nn::ActivationPointsPtr points) {
  for (size_t i = 0; i < layers_->size(); ++i)
    layers_[i]->as<nn::TransformerBlock>()->set_activation_points(points,
                                                                  "model.decoder.layers." + std::to_string(i) + ".");
  points_ = {std::move(points), "model.decoder."};
}

}  // namespace outeffhop::models
