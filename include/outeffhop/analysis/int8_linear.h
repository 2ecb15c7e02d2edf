// A Linear layer computed in INT8 by LibTorch's quantized CPU engine (the first that computes exactly on this CPU: see
// exact_quantized_engine): the weight as qint8, symmetric per tensor (the grid of fake_quant_sym), the input as quint8
// with a static range and the output requantized to quint8 with a static range (the grids of fake_quant_asym). The
// result is dequantized to float, to replace the simulated path and compare with it.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/nn/modules/linear.h>

#include "outeffhop/nn/activation_points.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

struct LinearPackedParamsBase;

namespace outeffhop::analysis {

class Int8Linear {
 public:
  // input_range / output_range: calibrated (min, max) of the layer's input and output activations.
  Int8Linear(const torch::nn::Linear& linear, std::pair<double, double> input_range,
             std::pair<double, double> output_range);
  ~Int8Linear();

  at::Tensor forward(const at::Tensor& x) const;  // float ... x in_features -> float ... x out_features
  int64_t packed_weight_bytes() const;            // int8 weight bytes (excluding the float bias)

  // A static quint8 grid; all_zero: the calibrated range was [0, 0], and every value maps to 0.
  struct Grid {
    double scale = 1;
    int64_t zero_point = 0;
    bool all_zero = false;
  };

 private:
  c10::intrusive_ptr<LinearPackedParamsBase> packed_;
  int64_t in_features_ = 0, out_features_ = 0;
  Grid in_, out_;
};

// Real INT8 for the Linear layers of a model with activation points: every Linear whose own point (its output) and
// input point were calibrated runs as an Int8Linear with those ranges. `input_point` names the point that feeds a
// Linear (model-specific: opt_linear_input_point). attach() installs them as the points' Linear override.
class Int8Linears {
 public:
  Int8Linears(torch::nn::Module& model, const std::vector<std::pair<std::string, std::pair<double, double>>>& ranges,
              const std::function<std::string(const std::string&)>& input_point);
  void attach(nn::ActivationPoints& points) const;
  size_t size() const { return layers_.size(); }
  int64_t weight_elements() const;  // weights held in int8 (one byte each; their float32 copies take four)

 private:
  std::map<std::string, std::shared_ptr<Int8Linear>> layers_;
};

// OPT: q/k/v_proj read self_attn_layer_norm, out_proj reads self_attn.context, fc1 reads final_layer_norm, fc2 reads
// activation_fn (all within the same layer).
std::string opt_linear_input_point(const std::string& linear);
// ViT: query/key/value read layernorm_before, attention.output.dense reads attention.attention.context,
// intermediate.dense reads layernorm_after, output.dense reads intermediate.intermediate_act_fn.
std::string vit_linear_input_point(const std::string& linear);
// BERT: query/key/value read the layer's input (the previous layer's output.LayerNorm, or bert.embeddings.LayerNorm),
// attention.output.dense reads attention.self.context, intermediate.dense reads attention.output.LayerNorm,
// output.dense reads intermediate.intermediate_act_fn.
std::string bert_linear_input_point(const std::string& linear);

// The quantized engines this LibTorch offers ("fbgemm", "x86", "onednn", "qnnpack") and the current one.
std::vector<std::string> quantized_engines();
std::string current_quantized_engine();
// The quantized engine Int8Linear computes with, chosen once per process and made LibTorch's current one: the current
// engine if a probe shows it multiplies u8 x s8 exactly, else the first supported engine that does. Where the CPU has
// no AVX512-VNNI, FBGEMM, x86 and oneDNN multiply through vpmaddubsw, which saturates each pair of products at int16
// (2 x 255 x 127 > 32767): outputs off by tens of quantization steps (27 measured on an AVX2-only AMD EPYC), not the
// W8A8 the simulation computes. QNNPACK widens to int16 before multiplying and is exact there. Throws when no
// supported engine is exact. Every call makes the chosen engine current again.
std::string exact_quantized_engine();

}  // namespace outeffhop::analysis
