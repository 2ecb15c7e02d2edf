// A Linear layer in real INT8 through LibTorch's quantized engine (see int8_linear.h).
#include "outeffhop/analysis/int8_linear.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include <cmath>
#include <regex>
#include <stdexcept>

#include "outeffhop/outliers.h"

namespace outeffhop::analysis {
namespace {

using PrepackOp = c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, std::optional<at::Tensor>);

// The quantization grid of a calibrated range. A range of zero width (an activation that was exactly 0 in every
// calibration batch, like the context of an attention layer whose heads all abstain under clipped softmax) has no
// grid: everything quantizes to 0 there, as in fake_quant_asym. The scale 1 only keeps the engine's arguments valid.
Int8Linear::Grid grid_of(std::pair<double, double> range, const char* what) {
  TORCH_CHECK(std::isfinite(range.first) && std::isfinite(range.second) && range.first <= range.second,
              "Int8Linear: the ", what, " range [", range.first, ", ", range.second, "] is not a finite interval");
  const auto p = asym_quant_params(range.first, range.second, 8);
  if (p.delta == 0) return {1.0, 0, true};
  return {p.delta, p.zero_point, false};
}

const c10::TypedOperatorHandle<PrepackOp>& linear_prepack() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::linear_prepack", "").typed<PrepackOp>();
  return op;
}

// Does `engine` compute a 64-long dot product of input 255 (quint8) and weight 127 (qint8) exactly? Pairs of these
// products overflow int16, so an engine that saturates them lands near half the exact level.
bool computes_exactly(at::QEngine engine) {
  constexpr int64_t kDepth = 64, kLevel = 200;
  const double exact = kDepth * 255.0 * 127.0;
  try {
    at::globalContext().setQEngine(engine);
    const auto qw = at::quantize_per_tensor(at::full({1, kDepth}, 127.0), 1.0, 0, at::kQInt8);
    const auto qx = at::quantize_per_tensor(at::full({1, kDepth}, 255.0), 1.0, 0, at::kQUInt8);
    const auto y = linear_prepack().call(qw, std::nullopt)->apply(qx, exact / kLevel, 0);
    return y.int_repr().item<int64_t>() == kLevel;
  } catch (const c10::Error&) {  // an engine that cannot run this layout is not a candidate
    return false;
  }
}

}  // namespace

std::string exact_quantized_engine() {
  static const at::QEngine chosen = [] {
    const auto current = at::globalContext().qEngine();
    std::vector<at::QEngine> candidates = {current};
    for (const auto e : at::globalContext().supportedQEngines())
      if (e != current && e != at::QEngine::NoQEngine) candidates.push_back(e);
    for (const auto e : candidates)
      if (computes_exactly(e)) return e;
    at::globalContext().setQEngine(current);
    throw std::runtime_error("Int8Linear: no quantized engine of this LibTorch multiplies int8 exactly on this CPU; "
                             "real INT8 evaluation is unavailable here");
  }();
  at::globalContext().setQEngine(chosen);  // again on every call: someone may have changed it since
  return c10::toString(chosen);
}

Int8Linear::Int8Linear(const torch::nn::Linear& linear, std::pair<double, double> input_range,
                       std::pair<double, double> output_range) {
  exact_quantized_engine();  // packed weights belong to the engine current when packing
  const auto w = linear->weight.detach().to(at::kFloat).contiguous();
  in_features_ = w.size(1), out_features_ = w.size(0);
  const double w_max = w.abs().max().item<double>();
  const auto qw = at::quantize_per_tensor(w, w_max > 0 ? w_max / 127 : 1.0, 0, at::kQInt8);
  std::optional<at::Tensor> bias;
  if (linear->bias.defined()) bias = linear->bias.detach().to(at::kFloat).contiguous();
  packed_ = linear_prepack().call(qw, bias);
  in_ = grid_of(input_range, "input"), out_ = grid_of(output_range, "output");
}

Int8Linear::~Int8Linear() = default;

at::Tensor Int8Linear::forward(const at::Tensor& x) const {
  TORCH_CHECK(x.size(-1) == in_features_, "Int8Linear: input has ", x.size(-1), " features, expected ",
              in_features_);
  auto shape = x.sizes().vec();
  shape.back() = out_features_;
  if (out_.all_zero) return at::zeros(shape, x.options().dtype(at::kFloat));
  auto flat = x.reshape({-1, in_features_}).to(at::kFloat).contiguous();
  if (in_.all_zero) flat = at::zeros_like(flat);
  const auto qx = at::quantize_per_tensor(flat, in_.scale, in_.zero_point, at::kQUInt8);
  return packed_->apply(qx, out_.scale, out_.zero_point).dequantize().view(shape);
}

int64_t Int8Linear::packed_weight_bytes() const { return in_features_ * out_features_; }

Int8Linears::Int8Linears(torch::nn::Module& model,
                         const std::vector<std::pair<std::string, std::pair<double, double>>>& ranges,
                         const std::function<std::string(const std::string&)>& input_point) {
  const std::map<std::string, std::pair<double, double>> range(ranges.begin(), ranges.end());
  for (const auto& item : model.named_modules()) {
    auto* linear = item.value()->as<torch::nn::Linear>();
    if (!linear) continue;
    const auto out = range.find(item.key()), in = range.find(input_point(item.key()));
    if (out == range.end() || in == range.end()) continue;  // not a calibrated point (e.g. gates)
    layers_[item.key()] = std::make_shared<Int8Linear>(torch::nn::Linear(std::dynamic_pointer_cast<
        torch::nn::LinearImpl>(item.value())), in->second, out->second);
  }
  TORCH_CHECK(!layers_.empty(), "Int8Linears: no Linear layer has calibrated input and output ranges");
}

int64_t Int8Linears::weight_elements() const {
  int64_t n = 0;
  for (const auto& [name, layer] : layers_) n += layer->packed_weight_bytes();
  return n;
}

void Int8Linears::attach(nn::ActivationPoints& points) const {
  points.set_linear_override([layers = layers_](const std::string& name, const at::Tensor& x) {
    const auto it = layers.find(name);
    return it == layers.end() ? at::Tensor() : it->second->forward(x);
  });
}

namespace {

// The input point of `linear` from a table of (Linear name suffix, its input point relative to the suffix's parent).
std::string input_point_from(const std::string& linear,
                             std::initializer_list<std::pair<const char*, const char*>> table) {
  for (const auto& [suffix, input] : table) {
    const std::string s = suffix;
    if (linear.ends_with(s))
      return linear.substr(0, linear.size() - s.size()) + input;
  }
  return "";
}

}  // namespace

std::string opt_linear_input_point(const std::string& linear) {
  return input_point_from(linear, {{"self_attn.q_proj", "self_attn_layer_norm"},
                                   {"self_attn.k_proj", "self_attn_layer_norm"},
                                   {"self_attn.v_proj", "self_attn_layer_norm"},
                                   {"self_attn.out_proj", "self_attn.context"},
                                   {"fc1", "final_layer_norm"},
                                   {"fc2", "activation_fn"}});
}

std::string vit_linear_input_point(const std::string& linear) {
  return input_point_from(linear, {{"attention.attention.query", "layernorm_before"},
                                   {"attention.attention.key", "layernorm_before"},
                                   {"attention.attention.value", "layernorm_before"},
                                   {"attention.output.dense", "attention.attention.context"},
                                   {"intermediate.dense", "layernorm_after"},
                                   {"output.dense", "intermediate.intermediate_act_fn"}});
}

std::string bert_linear_input_point(const std::string& linear) {
  static const std::regex qkv(R"((.*)\.encoder\.layer\.(\d+)\.attention\.self\.(query|key|value))");
  std::smatch m;
  if (std::regex_match(linear, m, qkv)) {
    const int layer = std::stoi(m[2]);
    return layer == 0 ? m[1].str() + ".embeddings.LayerNorm"
                      : m[1].str() + ".encoder.layer." + std::to_string(layer - 1) + ".output.LayerNorm";
  }
  return input_point_from(linear, {{"attention.output.dense", "attention.self.context"},
                                   {"intermediate.dense", "attention.output.LayerNorm"},
                                   {"output.dense", "intermediate.intermediate_act_fn"}});
}

std::vector<std::string> quantized_engines() {
  std::vector<std::string> names;
  for (const auto e : at::globalContext().supportedQEngines()) names.emplace_back(c10::toString(e));
  return names;
}

std::string current_quantized_engine() { return c10::toString(at::globalContext().qEngine()); }

}  // namespace outeffhop::analysis
