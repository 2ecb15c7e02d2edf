// STanHop-Net (Wu et al. 2024), the Hopfield-based forecaster of the paper's Table 2, with any association of
// attention_variant.h: dense softmax ("Hopfield"), sparsemax ("SparseHopfield"), entmax_alpha (GSH, "STanHop-Net"),
// softmax1 (OutEffHop), clipped and gated. The layout is Crossformer's, with Hopfield layers in place of attention:
//   input B x in_len x D, left-padded to a multiple of seg_len by repeating the first step
//   -> enc_emb: Linear(seg_len -> d) per series and segment, + enc_pos (learned), pre_norm
//   -> encoder.encode_blocks.i (i >= 1 first coarse-grains: merge_layer merges win_size adjacent segments), each one
//      STanHop layer: TimeGSH (Hopfield over each series' segments; residual, norm1, mlp1, norm2) then SeriesGSH
//      (series_pool: `factor` learned memories per segment retrieve from the series; series_gsh: each series retrieves
//      from them; residual, norm3, mlp2, norm4)
//   -> decoder.decode_layers.i (layers + 1 of them): a STanHop layer over dec_pos (learned), cross retrieval from
//      the encoder's i-th scale, norm1, mlp1, norm2, linear_pred: Linear(d -> seg_len); the per-scale predictions sum.
// The public code leaves the pooling memories uninitialised (torch.empty); here they and the positions are N(0, 1)
// (Crossformer's router and positions), Linear layers keep PyTorch's default initialisation.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "outeffhop/nn/activation_points.h"
#include "outeffhop/nn/attention_variant.h"

namespace outeffhop::models {

struct StanhopConfig {
  int64_t series = 7;  // D, variables per time step
  int64_t in_len = 168;
  int64_t out_len = 24;
  int64_t seg_len = 6;   // time steps per segment (patch)
  int64_t win_size = 2;  // segments merged per coarse-graining step (1: every block keeps the resolution)
  int64_t layers = 3;    // encoder scale blocks; the decoder has layers + 1
  int64_t factor = 10;   // learned memories per segment in SeriesGSH's pooling
  int64_t d_model = 256;
  int64_t num_heads = 4;
  int64_t d_ff = 512;
  double dropout = 0.2;
  nn::AttentionVariant variant;  // the association of every Hopfield layer
};

class StanhopNetImpl : public torch::nn::Module {
 public:
  explicit StanhopNetImpl(StanhopConfig config);

  // x: B x in_len x series (float). Returns the forecast B x out_len x series.
  at::Tensor forward(const at::Tensor& x);

  // Activation points: every module's output under its parameter-name prefix (enc_emb.linear, pre_norm,
  // encoder.encode_blocks.i.merge_layer.{norm,linear}, ....encode_layers.0.{time_gsh,norm1,mlp1.0,mlp1.2,norm2,
  // series_pool,series_gsh,norm3,mlp2.0,mlp2.2,norm4}, decoder.decode_layers.i.{self_layer.*,cross,norm1,mlp1.0,
  // mlp1.2,norm2,linear_pred}), and inside each Hopfield layer its projections, scores, probabilities and context.
  void set_activation_points(nn::ActivationPointsPtr points);

  const StanhopConfig& config() const { return config_; }
  int64_t input_segments() const { return in_segments_; }
  int64_t output_segments() const { return out_segments_; }

 private:
  StanhopConfig config_;
  int64_t in_segments_ = 0, out_segments_ = 0;
  torch::nn::Linear embedding_{nullptr};
  at::Tensor enc_pos_, dec_pos_;  // 1 x D x segments x d
  torch::nn::LayerNorm pre_norm_{nullptr};
  torch::nn::ModuleList encode_blocks_{nullptr}, decode_layers_{nullptr};
  nn::PointsHandle points_;
};
TORCH_MODULE(StanhopNet);

}  // namespace outeffhop::models
