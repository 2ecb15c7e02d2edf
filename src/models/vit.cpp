// Vision Transformer classifier (see vit.h).
#include "outeffhop/models/vit.h"

#include "init_weights.h"
#include "outeffhop/nn/encoder_layer.h"

namespace outeffhop::models {

VitForImageClassificationImpl::VitForImageClassificationImpl(VitConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  TORCH_CHECK(c.image_size > 0 && c.patch_size > 0 && c.image_size % c.patch_size == 0,
              "VitForImageClassification: patch_size (", c.patch_size, ") must divide image_size (", c.image_size, ")");
  TORCH_CHECK(c.channels > 0 && c.num_classes > 0 && c.d_model > 0 && c.d_ff > 0 && c.num_layers >= 0,
              "VitForImageClassification: channels, num_classes, d_model and d_ff must be > 0, num_layers >= 0");
  const int64_t patches = (c.image_size / c.patch_size) * (c.image_size / c.patch_size);
  vit_ = register_module("vit", std::make_shared<torch::nn::Module>());
  embeddings_ = vit_->register_module("embeddings", std::make_shared<torch::nn::Module>());
  cls_token_ = embeddings_->register_parameter("cls_token", at::zeros({1, 1, c.d_model}));
  position_embeddings_ = embeddings_->register_parameter("position_embeddings", at::zeros({1, patches + 1, c.d_model}));
  patch_embeddings_ = embeddings_->register_module("patch_embeddings", std::make_shared<torch::nn::Module>());
  projection_ = patch_embeddings_->register_module(
      "projection",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c.channels, c.d_model, c.patch_size).stride(c.patch_size)));
  encoder_ = vit_->register_module("encoder", std::make_shared<torch::nn::Module>());
  layers_ = encoder_->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    nn::EncoderLayerOptions l;
    l.d_model = c.d_model, l.num_heads = c.num_heads, l.d_ff = c.d_ff, l.variant = c.variant;
    l.norm = nn::NormPosition::kPre, l.dropout = c.dropout, l.attention_dropout = c.attention_dropout;
    l.layer_norm_eps = c.layer_norm_eps;
    layers_->push_back(nn::EncoderLayer(l));
  }
  layernorm_ = vit_->register_module(
      "layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model}).eps(c.layer_norm_eps)));
  classifier_ = register_module("classifier", torch::nn::Linear(c.d_model, c.num_classes));
  dropout_ = register_module("dropout", torch::nn::Dropout(c.dropout));

  init_transformer_weights(*this, c.init_std);
  torch::NoGradGuard no_grad;
  cls_token_.normal_(0, c.init_std);
  position_embeddings_.normal_(0, c.init_std);
}

at::Tensor VitForImageClassificationImpl::forward(const at::Tensor& images) {
  const auto& c = config_;
  TORCH_CHECK(images.dim() == 4 && images.size(1) == c.channels && images.size(2) == c.image_size &&
                  images.size(3) == c.image_size && images.is_floating_point(),
              "VitForImageClassification: images must be floating B x ", c.channels, " x ", c.image_size, " x ",
              c.image_size, ", got ", images.scalar_type(), " ", images.sizes());
  const int64_t B = images.size(0);
  const auto patches = points_.pass("embeddings.patch_embeddings.projection", projection_->forward(images));
  const auto tokens = patches.flatten(2).transpose(1, 2);  // B x N x d
  auto h = at::cat({cls_token_.expand({B, 1, c.d_model}), tokens}, 1) + position_embeddings_;
  h = dropout_->forward(points_.pass("embeddings", h));
  for (const auto& layer : *layers_) h = layer->as<nn::EncoderLayer>()->forward(h);
  h = points_.pass("layernorm", layernorm_->forward(h));
  return classifier_->forward(h.select(1, 0));  // kept in float under quantization, like an LM head
}

void VitForImageClassificationImpl::set_activation_points(nn::ActivationPointsPtr points) {
  for (size_t i = 0; i < layers_->size(); ++i)
    layers_[i]->as<nn::EncoderLayer>()->set_activation_points(points, "vit.encoder.layer." + std::to_string(i) + ".");
  points_ = {std::move(points), "vit."};
}

}  // namespace outeffhop::models
