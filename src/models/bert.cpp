// BERT masked-language model (see bert.h).
#include "outeffhop/models/bert.h"

#include "check_ids.h"
#include "init_weights.h"
#include "outeffhop/nn/encoder_layer.h"

namespace outeffhop::models {

BertForMaskedLMImpl::BertForMaskedLMImpl(BertConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  TORCH_CHECK(c.vocab_size > 0 && c.d_model > 0 && c.d_ff > 0 && c.num_layers >= 0 && c.max_positions > 0 &&
                  c.type_vocab_size > 0,
              "BertForMaskedLM: vocab_size, d_model, d_ff, max_positions and type_vocab_size must be > 0, num_layers "
              ">= 0");
  auto norm = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model}).eps(c.layer_norm_eps)); };
  bert_ = register_module("bert", std::make_shared<torch::nn::Module>());
  embeddings_ = bert_->register_module("embeddings", std::make_shared<torch::nn::Module>());
  word_embeddings_ = embeddings_->register_module("word_embeddings", torch::nn::Embedding(c.vocab_size, c.d_model));
  position_embeddings_ =
      embeddings_->register_module("position_embeddings", torch::nn::Embedding(c.max_positions, c.d_model));
  token_type_embeddings_ =
      embeddings_->register_module("token_type_embeddings", torch::nn::Embedding(c.type_vocab_size, c.d_model));
  embeddings_norm_ = embeddings_->register_module("LayerNorm", norm());
  encoder_ = bert_->register_module("encoder", std::make_shared<torch::nn::Module>());
  layers_ = encoder_->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    nn::EncoderLayerOptions l;
    l.d_model = c.d_model, l.num_heads = c.num_heads, l.d_ff = c.d_ff, l.variant = c.variant;
    l.norm = nn::NormPosition::kPost, l.dropout = c.dropout, l.attention_dropout = c.attention_dropout;
    l.layer_norm_eps = c.layer_norm_eps;
    layers_->push_back(nn::EncoderLayer(l));
  }
  cls_ = register_module("cls", std::make_shared<torch::nn::Module>());
  predictions_ = cls_->register_module("predictions", std::make_shared<torch::nn::Module>());
  decoder_bias_ = predictions_->register_parameter("bias", at::zeros({c.vocab_size}));
  transform_ = predictions_->register_module("transform", std::make_shared<torch::nn::Module>());
  transform_dense_ = transform_->register_module("dense", torch::nn::Linear(c.d_model, c.d_model));
  transform_norm_ = transform_->register_module("LayerNorm", norm());
  dropout_ = register_module("dropout", torch::nn::Dropout(c.dropout));
  init_transformer_weights(*this, c.init_std);
}

at::Tensor BertForMaskedLMImpl::forward(const at::Tensor& ids, const at::Tensor& token_type_ids,
                                        const at::Tensor& attention_mask, const at::Tensor& predict) {
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong, "BertForMaskedLM: ids must be int64 B x T, got ",
              ids.scalar_type(), " ", ids.sizes());
  const int64_t T = ids.size(1);
  TORCH_CHECK(T >= 1 && T <= config_.max_positions, "BertForMaskedLM: sequence length ", T, " outside [1, ",
              config_.max_positions, "]");
  for (const auto* t : {&token_type_ids, &attention_mask, &predict})
    TORCH_CHECK(!t->defined() || t->sizes() == ids.sizes(),
                "BertForMaskedLM: token_type_ids, attention_mask and "
                "predict must be B x T like ids ",
                ids.sizes(), ", got ", t->sizes());
  const auto types = token_type_ids.defined() ? token_type_ids : at::zeros_like(ids);
  check_ids_in_range(ids, config_.vocab_size, "BertForMaskedLM: token ids");
  check_ids_in_range(types, config_.type_vocab_size, "BertForMaskedLM: token_type_ids");
  const auto words = points_.pass("embeddings.word_embeddings", word_embeddings_->forward(ids));
  const auto positions =
      points_.pass("embeddings.position_embeddings", position_embeddings_->forward(at::arange(T, ids.options())));
  const auto segments = points_.pass("embeddings.token_type_embeddings", token_type_embeddings_->forward(types));
  const auto sum = points_.pass("embeddings.sum", words + positions + segments);
  auto h = dropout_->forward(points_.pass("embeddings.LayerNorm", embeddings_norm_->forward(sum)));
  const auto keep = attention_mask.defined() ? attention_mask.to(at::kBool) : at::Tensor();
  for (const auto& layer : *layers_) h = layer->as<nn::EncoderLayer>()->forward(h, keep);
  if (predict.defined()) h = h.index({predict.to(at::kBool)});  // N x d
  // The MLM head, kept in float: dense -> GELU -> LayerNorm -> tied decoder + bias.
  h = transform_norm_->forward(at::gelu(transform_dense_->forward(h)));
  return at::matmul(h, word_embeddings_->weight.t()) + decoder_bias_;
}

void BertForMaskedLMImpl::set_activation_points(nn::ActivationPointsPtr points) {
  for (size_t i = 0; i < layers_->size(); ++i)
    layers_[i]->as<nn::EncoderLayer>()->set_activation_points(points, "bert.encoder.layer." + std::to_string(i) + ".");
  points_ = {std::move(points), "bert."};
}

}  // namespace outeffhop::models
