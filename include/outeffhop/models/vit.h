// A Vision Transformer classifier (Dosovitskiy et al. 2021, as Hugging Face's ViTForImageClassification): patch
// embedding (a convolution with stride = kernel = patch), a class token, learned positions, pre-LN encoder layers of
// any attention variant (GELU FFN), a final LayerNorm and a linear classifier on the class token. Parameter names
// follow Hugging Face (vit.embeddings.cls_token, vit.encoder.layer.N.attention.attention.query, ..., classifier).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "outeffhop/nn/activation_points.h"
#include "outeffhop/nn/attention_variant.h"

namespace outeffhop::models {

struct VitConfig {
  int64_t image_size = 28;  // square images
  int64_t patch_size = 4;   // must divide image_size
  int64_t channels = 1;
  int64_t num_classes = 10;
  int64_t d_model = 64;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t d_ff = 256;
  double dropout = 0.0;
  double attention_dropout = 0.0;
  double layer_norm_eps = 1e-12;
  double init_std = 0.02;  // N(0, std) for the weights, positions and class token, zero biases (Hugging Face's init)
  nn::AttentionVariant variant;
};

class VitForImageClassificationImpl : public torch::nn::Module {
 public:
  explicit VitForImageClassificationImpl(VitConfig config);

  // images: B x channels x image_size x image_size, floating point. Returns logits B x num_classes.
  at::Tensor forward(const at::Tensor& images);

  // Activation points: vit.embeddings.patch_embeddings.projection, vit.embeddings (with the class token and the
  // positions), every layer's points under vit.encoder.layer.N. and vit.layernorm.
  void set_activation_points(nn::ActivationPointsPtr points);

  const VitConfig& config() const { return config_; }

 private:
  VitConfig config_;
  std::shared_ptr<torch::nn::Module> vit_, embeddings_, patch_embeddings_, encoder_;  // Hugging Face's name scopes
  at::Tensor cls_token_, position_embeddings_;                                     // 1 x 1 x d, 1 x (N + 1) x d
  torch::nn::Conv2d projection_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm layernorm_{nullptr};
  torch::nn::Linear classifier_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  nn::PointsHandle points_;
};
TORCH_MODULE(VitForImageClassification);

}  // namespace outeffhop::models
