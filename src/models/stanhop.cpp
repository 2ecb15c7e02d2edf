// STanHop-Net (see stanhop.h).
#include "outeffhop/models/stanhop.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/dropout.h>

#include "outeffhop/nn/multihead_attention.h"

namespace outeffhop::models {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

torch::nn::LayerNorm layer_norm(int64_t d) { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})); }

// A Hopfield layer: the variant's association between query and stored patterns, with STanHop's projection names.
nn::MultiheadAttention hopfield(const StanhopConfig& c) {
  nn::MultiheadAttentionOptions o;
  o.embed_dim = c.d_model, o.num_heads = c.num_heads, o.variant = c.variant;
  o.names = {"query_projection", "key_projection", "value_projection", "out_projection"};
  return nn::MultiheadAttention(o);
}

// Linear -> GELU -> Linear, children "0" and "2" as in an nn.Sequential; each output is an activation point.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t d, int64_t hidden)
      : first_(register_module("0", torch::nn::Linear(d, hidden))),
        last_(register_module("2", torch::nn::Linear(hidden, d))) {}
  at::Tensor forward(const at::Tensor& x, const nn::PointsHandle& points, const std::string& name) {
    const auto h = points.pass(name + ".1", at::gelu(points.linear(name + ".0", first_, x)));
    return points.linear(name + ".2", last_, h);
  }

 private:
  torch::nn::Linear first_, last_;
};
TORCH_MODULE(FeedForward);

// TimeGSH then SeriesGSH on B x D x segments x d.
class StanhopLayerImpl : public torch::nn::Module {
 public:
  StanhopLayerImpl(const StanhopConfig& c, int64_t segments)
      : time_gsh_(register_module("time_gsh", hopfield(c))),
        series_pool_(register_module("series_pool", hopfield(c))),
        series_gsh_(register_module("series_gsh", hopfield(c))),
        memories_(register_parameter("memories", at::randn({segments, c.factor, c.d_model}))),
        norm1_(register_module("norm1", layer_norm(c.d_model))),
        norm2_(register_module("norm2", layer_norm(c.d_model))),
        norm3_(register_module("norm3", layer_norm(c.d_model))),
        norm4_(register_module("norm4", layer_norm(c.d_model))),
        mlp1_(register_module("mlp1", FeedForward(c.d_model, c.d_ff))),
        mlp2_(register_module("mlp2", FeedForward(c.d_model, c.d_ff))),
        dropout_(register_module("dropout", torch::nn::Dropout(c.dropout))) {}

  at::Tensor forward(const at::Tensor& x) {
    const int64_t B = x.size(0), D = x.size(1), S = x.size(2), d = x.size(3);
    // TimeGSH: each series' segments retrieve from one another.
    const auto t = x.reshape({B * D, S, d});
    auto h = points_.pass("norm1", norm1_->forward(t + dropout_->forward(time_gsh_->forward(t))));
    h = points_.pass("norm2", norm2_->forward(h + dropout_->forward(mlp1_->forward(h, points_, "mlp1"))));
    // SeriesGSH: per segment, learned memories pool the D series, then each series retrieves from the pooled ones.
    const auto s = h.view({B, D, S, d}).transpose(1, 2).reshape({B * S, D, d});
    const auto memories = memories_.unsqueeze(0).expand({B, S, memories_.size(1), d}).reshape({B * S, -1, d});
    const auto pooled = series_pool_->forward(memories, s);
    auto y = points_.pass("norm3", norm3_->forward(s + dropout_->forward(series_gsh_->forward(s, pooled))));
    y = points_.pass("norm4", norm4_->forward(y + dropout_->forward(mlp2_->forward(y, points_, "mlp2"))));
    return y.view({B, S, D, d}).transpose(1, 2).contiguous();
  }

  void set_activation_points(nn::ActivationPointsPtr points, const std::string& prefix) {
    time_gsh_->set_activation_points(points, prefix + "time_gsh.");
    series_pool_->set_activation_points(points, prefix + "series_pool.");
    series_gsh_->set_activation_points(points, prefix + "series_gsh.");
    points_ = {std::move(points), prefix};
  }

 private:
  nn::MultiheadAttention time_gsh_, series_pool_, series_gsh_;
  at::Tensor memories_;  // segments x factor x d
  torch::nn::LayerNorm norm1_, norm2_, norm3_, norm4_;
  FeedForward mlp1_, mlp2_;
  torch::nn::Dropout dropout_;
  nn::PointsHandle points_;
};
TORCH_MODULE(StanhopLayer);

// Coarse-graining: win_size adjacent segments concatenated, normed and projected to d.
class SegmentMergeImpl : public torch::nn::Module {
 public:
  SegmentMergeImpl(int64_t d, int64_t win)
      : win_(win),
        norm_(register_module("norm", layer_norm(win * d))),
        linear_(register_module("linear", torch::nn::Linear(win * d, d))) {}
  at::Tensor forward(at::Tensor x, const nn::PointsHandle& points) {
    const int64_t S = x.size(2), pad = (win_ - S % win_) % win_;
    // Crossformer appends the last `pad` segments; with fewer than pad segments they are cycled.
    if (pad > 0)
      x = at::cat({x, x.index_select(2, at::arange(S - pad, S, x.options().dtype(at::kLong)).remainder(S))}, 2);
    std::vector<at::Tensor> strided;
    for (int64_t i = 0; i < win_; ++i) strided.push_back(x.slice(2, i, x.size(2), win_));
    const auto merged = points.pass("merge_layer.norm", norm_->forward(at::cat(strided, -1)));
    return points.linear("merge_layer.linear", linear_, merged);
  }

 private:
  int64_t win_;
  torch::nn::LayerNorm norm_;
  torch::nn::Linear linear_;
};
TORCH_MODULE(SegmentMerge);

class ScaleBlockImpl : public torch::nn::Module {
 public:
  ScaleBlockImpl(const StanhopConfig& c, int64_t win, int64_t segments)
      : layers_(register_module("encode_layers", torch::nn::ModuleList())) {
    if (win > 1) merge_ = register_module("merge_layer", SegmentMerge(c.d_model, win));
    layers_->push_back(StanhopLayer(c, segments));
  }
  at::Tensor forward(at::Tensor x) {
    if (merge_) x = merge_->forward(x, points_);
    for (const auto& layer : *layers_) x = layer->as<StanhopLayer>()->forward(x);
    return x;
  }
  void set_activation_points(nn::ActivationPointsPtr points, const std::string& prefix) {
    for (size_t i = 0; i < layers_->size(); ++i)
      layers_[i]->as<StanhopLayer>()->set_activation_points(points,
                                                            prefix + "encode_layers." + std::to_string(i) + ".");
    points_ = {std::move(points), prefix};
  }

 private:
  SegmentMerge merge_{nullptr};
  torch::nn::ModuleList layers_;
  nn::PointsHandle points_;
};
TORCH_MODULE(ScaleBlock);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const StanhopConfig& c, int64_t segments)
      : self_layer_(register_module("self_layer", StanhopLayer(c, segments))),
        cross_(register_module("cross", hopfield(c))),
        norm1_(register_module("norm1", layer_norm(c.d_model))),
        norm2_(register_module("norm2", layer_norm(c.d_model))),
        mlp1_(register_module("mlp1", FeedForward(c.d_model, c.d_model))),
        linear_pred_(register_module("linear_pred", torch::nn::Linear(c.d_model, c.seg_len))),
        dropout_(register_module("dropout", torch::nn::Dropout(c.dropout))) {}

  // x: B x D x out_segments x d, encoded: B x D x segments_i x d. Returns (the layer's output, its prediction
  // B x D x out_segments x seg_len).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x, const at::Tensor& encoded) {
    const int64_t B = x.size(0), D = x.size(1), S = x.size(2), d = x.size(3);
    const auto q = self_layer_->forward(x).view({B * D, S, d});
    const auto stored = encoded.reshape({B * D, encoded.size(2), d});
    const auto h = points_.pass("norm1", norm1_->forward(q + dropout_->forward(cross_->forward(q, stored))));
    const auto out = points_.pass("norm2", norm2_->forward(h + mlp1_->forward(h, points_, "mlp1")));
    const auto prediction = points_.linear("linear_pred", linear_pred_, out);
    return {out.view({B, D, S, d}), prediction.view({B, D, S, -1})};
  }
  void set_activation_points(nn::ActivationPointsPtr points, const std::string& prefix) {
    self_layer_->set_activation_points(points, prefix + "self_layer.");
    cross_->set_activation_points(points, prefix + "cross.");
    points_ = {std::move(points), prefix};
  }

 private:
  StanhopLayer self_layer_;
  nn::MultiheadAttention cross_;
  torch::nn::LayerNorm norm1_, norm2_;
  FeedForward mlp1_;
  torch::nn::Linear linear_pred_;
  torch::nn::Dropout dropout_;
  nn::PointsHandle points_;
};
TORCH_MODULE(DecoderLayer);

}  // namespace

StanhopNetImpl::StanhopNetImpl(StanhopConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  TORCH_CHECK(c.series >= 1 && c.in_len >= 1 && c.out_len >= 1 && c.seg_len >= 1 && c.win_size >= 1 && c.layers >= 1 &&
                  c.factor >= 1 && c.d_ff >= 1,
              "StanhopNet: series, in_len, out_len, seg_len, win_size, layers, factor and d_ff must be >= 1");
  TORCH_CHECK(c.d_model > 0 && c.num_heads > 0 && c.d_model % c.num_heads == 0, "StanhopNet: d_model (", c.d_model,
              ") must be a positive multiple of num_heads (", c.num_heads, ")");
  TORCH_CHECK(c.dropout >= 0 && c.dropout < 1, "StanhopNet: dropout must be in [0, 1), got ", c.dropout);
  in_segments_ = ceil_div(c.in_len, c.seg_len), out_segments_ = ceil_div(c.out_len, c.seg_len);
  auto enc_emb = register_module("enc_emb", std::make_shared<torch::nn::Module>());
  embedding_ = enc_emb->register_module("linear", torch::nn::Linear(c.seg_len, c.d_model));
  enc_pos_ = register_parameter("enc_pos", at::randn({1, c.series, in_segments_, c.d_model}));
  pre_norm_ = register_module("pre_norm", layer_norm(c.d_model));
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  encode_blocks_ = encoder->register_module("encode_blocks", torch::nn::ModuleList());
  int64_t segments = in_segments_;
  for (int64_t i = 0; i < c.layers; ++i) {
    const int64_t win = i == 0 ? 1 : c.win_size;
    segments = ceil_div(segments, win);
    encode_blocks_->push_back(ScaleBlock(c, win, segments));
  }
  dec_pos_ = register_parameter("dec_pos", at::randn({1, c.series, out_segments_, c.d_model}));
  auto decoder = register_module("decoder", std::make_shared<torch::nn::Module>());
  decode_layers_ = decoder->register_module("decode_layers", torch::nn::ModuleList());
  for (int64_t i = 0; i <= c.layers; ++i) decode_layers_->push_back(DecoderLayer(c, out_segments_));
}

at::Tensor StanhopNetImpl::forward(const at::Tensor& x) {
  const auto& c = config_;
  TORCH_CHECK(x.dim() == 3 && x.size(1) == c.in_len && x.size(2) == c.series && x.is_floating_point(),
              "StanhopNet: input must be floating B x in_len x series = B x ", c.in_len, " x ", c.series, ", got ",
              x.scalar_type(), " ", x.sizes());
  const int64_t B = x.size(0), pad = in_segments_ * c.seg_len - c.in_len;
  const auto padded = pad > 0 ? at::cat({x.narrow(1, 0, 1).expand({B, pad, c.series}), x}, 1) : x;
  const auto segments = padded.transpose(1, 2).reshape({B, c.series, in_segments_, c.seg_len});
  auto h = points_.linear("enc_emb.linear", embedding_, segments) + enc_pos_;
  h = points_.pass("pre_norm", pre_norm_->forward(h));
  std::vector<at::Tensor> scales = {h};
  for (const auto& block : *encode_blocks_) scales.push_back(block->as<ScaleBlock>()->forward(scales.back()));
  auto y = dec_pos_.expand({B, c.series, out_segments_, c.d_model});
  at::Tensor prediction;
  for (size_t i = 0; i < decode_layers_->size(); ++i) {
    auto [out, layer_prediction] = decode_layers_[i]->as<DecoderLayer>()->forward(y, scales[i]);
    y = out;
    prediction = prediction.defined() ? prediction + layer_prediction : layer_prediction;
  }
  // B x D x out_segments x seg_len -> B x time x D, cut to out_len.
  return prediction.reshape({B, c.series, out_segments_ * c.seg_len}).transpose(1, 2).narrow(1, 0, c.out_len);
}

void StanhopNetImpl::set_activation_points(nn::ActivationPointsPtr points) {
  for (size_t i = 0; i < encode_blocks_->size(); ++i)
    encode_blocks_[i]->as<ScaleBlock>()->set_activation_points(points,
                                                               "encoder.encode_blocks." + std::to_string(i) + ".");
  for (size_t i = 0; i < decode_layers_->size(); ++i)
    decode_layers_[i]->as<DecoderLayer>()->set_activation_points(points,
                                                                 "decoder.decode_layers." + std::to_string(i) + ".");
  points_ = {std::move(points), ""};
}

}  // namespace outeffhop::models
