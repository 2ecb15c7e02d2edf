// Hugging Face BERT / ViT encoder layers (see encoder_layer.h).
#include "outeffhop/nn/encoder_layer.h"

namespace outeffhop::nn {

EncoderLayerImpl::EncoderLayerImpl(EncoderLayerOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  TORCH_CHECK(o.d_model > 0 && o.d_ff > 0, "EncoderLayer: d_model and d_ff must be > 0");
  const bool vit = o.norm == NormPosition::kPre;
  auto norm = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model}).eps(o.layer_norm_eps)); };
  // The module tree follows Hugging Face: empty modules as name scopes.
  auto attention = register_module("attention", std::make_shared<torch::nn::Module>());
  MultiheadAttentionOptions a;
  a.embed_dim = o.d_model, a.num_heads = o.num_heads, a.variant = o.variant, a.dropout = o.attention_dropout;
  a.names = ProjectionNames::bert();
  attention_name_ = vit ? "attention" : "self";
  attention_ = attention->register_module(attention_name_, MultiheadAttention(a));
  auto attention_output = attention->register_module("output", std::make_shared<torch::nn::Module>());
  attention_dense_ = attention_output->register_module("dense", torch::nn::Linear(o.d_model, o.d_model));
  auto intermediate = register_module("intermediate", std::make_shared<torch::nn::Module>());
  intermediate_dense_ = intermediate->register_module("dense", torch::nn::Linear(o.d_model, o.d_ff));
  auto output = register_module("output", std::make_shared<torch::nn::Module>());
  output_dense_ = output->register_module("dense", torch::nn::Linear(o.d_ff, o.d_model));
  if (vit) {
    first_norm_ = register_module("layernorm_before", norm());
    second_norm_ = register_module("layernorm_after", norm());
    first_norm_name_ = "layernorm_before", second_norm_name_ = "layernorm_after";
    attention_residual_ = "attention_residual", output_residual_ = "";  // the sum is the layer's output
  } else {
    first_norm_ = attention_output->register_module("LayerNorm", norm());
    second_norm_ = output->register_module("LayerNorm", norm());
    first_norm_name_ = "attention.output.LayerNorm", second_norm_name_ = "output.LayerNorm";
    attention_residual_ = "attention.output.residual", output_residual_ = "output.residual";
  }
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));
}

at::Tensor EncoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& key_padding_mask) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options_.d_model, "EncoderLayer: x must be B x T x ", options_.d_model,
              ", got ", x.sizes());
  const bool vit = options_.norm == NormPosition::kPre;
  auto attend = [&](const at::Tensor& t) {
    const auto context = attention_->forward(t, {}, key_padding_mask);
    return dropout_->forward(points_.linear("attention.output.dense", attention_dense_, context));
  };
  auto feed_forward = [&](const at::Tensor& t) {
    const auto h = at::gelu(points_.linear("intermediate.dense", intermediate_dense_, t));
    const auto a = points_.pass("intermediate.intermediate_act_fn", h);
    return dropout_->forward(points_.linear("output.dense", output_dense_, a));
  };
  if (vit) {
    const auto h =
        points_.pass(attention_residual_, x + attend(points_.pass(first_norm_name_, first_norm_->forward(x))));
    return points_.pass(output_residual_, h + feed_forward(points_.pass(second_norm_name_, second_norm_->forward(h))));
  }
  const auto h = points_.pass(first_norm_name_, first_norm_->forward(points_.pass(attention_residual_, x + attend(x))));
  return points_.pass(second_norm_name_, second_norm_->forward(points_.pass(output_residual_, h + feed_forward(h))));
}

void EncoderLayerImpl::set_activation_points(ActivationPointsPtr points, std::string prefix) {
  attention_->set_activation_points(points, prefix + "attention." + attention_name_ + ".");
  points_ = {std::move(points), std::move(prefix)};
}

}  // namespace outeffhop::nn
