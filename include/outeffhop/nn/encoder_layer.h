// The encoder layer of Hugging Face's BERT and ViT, with any attention variant and their parameter names, so that
// checkpoints map one to one:
//   ViT (pre-LN):   layernorm_before, attention.attention.{query,key,value}, attention.output.dense, layernorm_after,
//                   intermediate.dense, output.dense
//   BERT (post-LN): attention.self.{query,key,value}, attention.output.{dense,LayerNorm}, intermediate.dense,
//                   output.{dense,LayerNorm}
// (TransformerBlock carries OPT's names and a Hopfield mixer; this one only these two layouts.)
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "outeffhop/nn/multihead_attention.h"
#include "outeffhop/nn/transformer_block.h"

namespace outeffhop::nn {

struct EncoderLayerOptions {
  int64_t d_model = 0;
  int64_t num_heads = 1;
  int64_t d_ff = 0;
  AttentionVariant variant;
  NormPosition norm = NormPosition::kPre;  // kPre: ViT's layout and names; kPost: BERT's
  double dropout = 0.0;                    // hidden dropout (after each output dense)
  double attention_dropout = 0.0;          // on the attention probabilities (training)
  double layer_norm_eps = 1e-12;           // both models' default
};

class EncoderLayerImpl : public torch::nn::Module {
 public:
  explicit EncoderLayerImpl(EncoderLayerOptions options);

  // x: B x T x d_model; key_padding_mask: bool B x T, true = keep. Returns B x T x d_model.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_padding_mask = {});

  // Activation points under `prefix` (the layer's name plus "."), named as the modules that produce them, GELU's as
  // intermediate.intermediate_act_fn, the residual sums as attention_residual / output_residual (ViT) or
  // attention.output.residual / output.residual (BERT), and for ViT the layer output under the layer's own name
  // (BERT's is output.LayerNorm).
  void set_activation_points(ActivationPointsPtr points, std::string prefix);

  const EncoderLayerOptions& options() const { return options_; }

 private:
  EncoderLayerOptions options_;
  MultiheadAttention attention_{nullptr};
  torch::nn::Linear attention_dense_{nullptr}, intermediate_dense_{nullptr}, output_dense_{nullptr};
  torch::nn::LayerNorm first_norm_{nullptr}, second_norm_{nullptr};  // ViT: before/after; BERT: attention/output
  torch::nn::Dropout dropout_{nullptr};
  std::string attention_name_, attention_residual_, first_norm_name_, second_norm_name_, output_residual_;
  PointsHandle points_;
};
TORCH_MODULE(EncoderLayer);

}  // namespace outeffhop::nn
