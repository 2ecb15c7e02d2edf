// Transformer blocks with any token mixer (see transformer_block.h).
#include "outeffhop/nn/transformer_block.h"

namespace outeffhop::nn {

TransformerBlockImpl::TransformerBlockImpl(TransformerBlockOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  TORCH_CHECK(o.d_model > 0 && o.d_ff > 0, "TransformerBlock: d_model and d_ff must be > 0");
  TORCH_CHECK(o.activation == "relu" || o.activation == "gelu", "TransformerBlock: activation must be relu or gelu, "
              "got '", o.activation, "'");
  auto norm = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.d_model}).eps(o.layer_norm_eps)); };
  auto attention = [&] {
    MultiheadAttentionOptions a;
    a.embed_dim = o.d_model, a.num_heads = o.num_heads, a.variant = o.variant, a.dropout = o.attention_dropout;
    return MultiheadAttention(a);
  };
  if (o.hopfield) {
    TORCH_CHECK(o.hopfield->input_size == o.d_model, "TransformerBlock: the Hopfield mixer's input_size (",
                o.hopfield->input_size, ") must equal d_model (", o.d_model, ")");
    hopfield_ = register_module("hopfield", Hopfield(*o.hopfield));
  } else {
    self_attn_ = register_module("self_attn", attention());
  }
  self_attn_layer_norm_ = register_module("self_attn_layer_norm", norm());
  if (o.cross_attention) {
    encoder_attn_ = register_module("encoder_attn", attention());
    encoder_attn_layer_norm_ = register_module("encoder_attn_layer_norm", norm());
  }
  fc1_ = register_module("fc1", torch::nn::Linear(o.d_model, o.d_ff));
  fc2_ = register_module("fc2", torch::nn::Linear(o.d_ff, o.d_model));
  final_layer_norm_ = register_module("final_layer_norm", norm());
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));
}

at::Tensor TransformerBlockImpl::mix(const at::Tensor& x, const at::Tensor& key_padding_mask, bool causal) {
  if (!hopfield_) return self_attn_->forward(x, {}, key_padding_mask, {}, causal);
  // Hopfield layers take masks in hopfield-layers' convention: true = padding / not allowed.
  const int64_t T = x.size(1);
  const auto padding = key_padding_mask.defined() ? key_padding_mask.logical_not() : at::Tensor();
  const auto future = causal ? at::ones({T, T}, x.options().dtype(at::kBool)).triu(1) : at::Tensor();
  return hopfield_->forward(x, x, x, padding, future);
}

at::Tensor TransformerBlockImpl::feed_forward(const at::Tensor& x) {
  const auto h = points_.linear("fc1", fc1_, x);
  const auto a = points_.pass("activation_fn", options_.activation == "relu" ? at::relu(h) : at::gelu(h));
  return points_.linear("fc2", fc2_, dropout_->forward(a));
}

at::Tensor TransformerBlockImpl::residual(const at::Tensor& x, torch::nn::LayerNorm& norm,
                                          const std::string& norm_point, const std::string& sum_point,
                                          const std::function<at::Tensor(const at::Tensor&)>& f) {
  if (options_.norm == NormPosition::kPre)
    return points_.pass(sum_point, x + dropout_->forward(f(points_.pass(norm_point, norm->forward(x)))));
  return points_.pass(norm_point, norm->forward(points_.pass(sum_point, x + dropout_->forward(f(x)))));
}

void TransformerBlockImpl::set_activation_points(ActivationPointsPtr points, std::string prefix) {
  if (self_attn_) self_attn_->set_activation_points(points, prefix + "self_attn.");
  if (encoder_attn_) encoder_attn_->set_activation_points(points, prefix + "encoder_attn.");
  points_ = {std::move(points), std::move(prefix)};
}

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x, const at::Tensor& key_padding_mask, bool causal,
                                         const at::Tensor& memory, const at::Tensor& memory_padding_mask) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options_.d_model, "TransformerBlock: x must be B x T x ",
              options_.d_model, ", got ", x.sizes());
  TORCH_CHECK(memory.defined() == options_.cross_attention,
              options_.cross_attention ? "TransformerBlock: a cross-attention block needs the encoder's memory"
                                       : "TransformerBlock: memory given to a block without cross-attention");
  auto h = residual(x, self_attn_layer_norm_, "self_attn_layer_norm", "self_attn_residual",
                    [&](const at::Tensor& t) { return mix(t, key_padding_mask, causal); });
  if (options_.cross_attention) {
    h = residual(h, encoder_attn_layer_norm_, "encoder_attn_layer_norm", "encoder_attn_residual",
                 [&](const at::Tensor& t) { return encoder_attn_->forward(t, memory, memory_padding_mask); });
  }
  if (options_.norm == NormPosition::kPre)  // the last residual sum is the block's output
    return residual(h, final_layer_norm_, "final_layer_norm", "",
                    [&](const at::Tensor& t) { return feed_forward(t); });
  return points_.pass("", residual(h, final_layer_norm_, "final_layer_norm", "ffn_residual",
                                              [&](const at::Tensor& t) { return feed_forward(t); }));
}

}  // namespace outeffhop::nn
