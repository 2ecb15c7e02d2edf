// Simulated W8A8 quantization (see w8a8.h).
#include "outeffhop/analysis/w8a8.h"

#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cmath>

#include "outeffhop/outliers.h"

namespace outeffhop::analysis {
namespace {

// fake_quant_sym on every row of a matrix, each row with its own scale max|row| / (2^(bits-1) - 1); a zero row stays 0.
at::Tensor fake_quant_sym_per_row(const at::Tensor& w, int64_t bits) {
  const double top = (1 << (bits - 1)) - 1;
  const auto delta = w.abs().amax({1}, /*keepdim=*/true) / top;
  const auto safe = at::where(delta > 0, delta, at::ones_like(delta));
  return at::clamp(at::round(w / safe), -top - 1, top) * delta;
}

// What rounding the weight `w` of `module` to `quantized` did; undefined `quantized`: the weight was kept in float.
WeightError weight_error(const std::string& module, const at::Tensor& w, const at::Tensor& quantized) {
  const double norm = w.norm().item<double>();
  WeightError error{module + ".weight", w.abs().max().item<double>(), norm / std::sqrt(static_cast<double>(w.numel()))};
  error.kept_float = !quantized.defined();
  if (quantized.defined() && norm > 0) error.relative_error = (quantized - w).norm().item<double>() / norm;
  return error;
}

}  // namespace

W8A8Simulation::W8A8Simulation(torch::nn::Module& model, nn::ActivationPointsPtr points,
                               std::map<std::string, at::Tensor> lookups, W8A8Options options)
    : model_(model), points_(std::move(points)), lookups_(std::move(lookups)), options_(options) {
  TORCH_CHECK(points_, "W8A8Simulation: the model's activation points are null");
  TORCH_CHECK(options_.weight_bits >= 2 && options_.weight_bits <= 16 && options_.activation_bits >= 2 &&
                  options_.activation_bits <= 16,
              "W8A8Simulation: bits must be in [2, 16]");
}

W8A8Simulation::~W8A8Simulation() { restore(); }

void W8A8Simulation::start_calibration() {
  restore();
  order_.clear();
  estimators_.clear();
  calibrating_ = true;
  points_->set_transform([this](const std::string& name, const at::Tensor& x) { return transform(name, x); });
}

void W8A8Simulation::quantize() {
  TORCH_CHECK(calibrating_, "W8A8Simulation: calibrate (start_calibration + forward passes) before quantize");
  calibrating_ = false;
  for (auto& [name, estimator] : estimators_) estimator.freeze();
  torch::NoGradGuard no_grad;
  // Each lookup table's symmetric scale, once: the looked-up rows are quantized on the table's grid, or with tables per
  // row each on its own row's (the table itself stays float, so a tied LM head does too). Recorded as the table's own
  // quantization would be; a table kept in float gets no scale, and its rows pass unchanged.
  const auto kept_float = [this](const std::string& module) {
    return options_.keep_float_weights && options_.keep_float_weights(module);
  };
  const auto rounded = [this](const at::Tensor& w, bool per_row) {
    return per_row ? fake_quant_sym_per_row(w, options_.weight_bits) : fake_quant_sym(w, options_.weight_bits);
  };
  lookup_deltas_.clear();
  for (const auto& [name, table] : lookups_) {
    const auto t = table.detach();
    at::Tensor quantized;
    if (!kept_float(name)) {
      quantized = rounded(t, options_.per_row_tables);
      lookup_deltas_[name] = t.abs().max().item<double>() / ((1 << (options_.weight_bits - 1)) - 1);
    }
    weight_errors_.push_back(weight_error(name, t, quantized));
    weight_errors_.back().lookup = true;
  }
  for (const auto& item : model_.named_modules()) {
    if (item.key().find("alpha.") != std::string::npos) continue;  // gate networks stay float
    at::Tensor weight;
    const auto* linear = item.value()->as<torch::nn::Linear>();
    if (linear) weight = linear->weight;
    if (auto* norm = item.value()->as<torch::nn::LayerNorm>()) weight = norm->weight;
    if (!weight.defined()) continue;
    const auto original = weight.detach().clone();
    at::Tensor quantized;
    if (!kept_float(item.key())) {
      quantized = rounded(original, linear && options_.per_channel_weights);
      saved_weights_.emplace_back(weight, original);
      weight.copy_(quantized);
    }
    weight_errors_.push_back(weight_error(item.key(), original, quantized));
  }
  quantizing_ = true;
  points_->set_transform([this](const std::string& name, const at::Tensor& x) { return transform(name, x); });
}

void W8A8Simulation::quantize(const std::vector<std::pair<std::string, std::pair<double, double>>>& ranges) {
  start_calibration();
  for (const auto& [name, range] : ranges) {
    if (options_.keep_float && options_.keep_float(name)) continue;
    estimators_.emplace(name, RangeEstimator::frozen_at(range));
    order_.push_back(name);
  }
  quantize();
}

void W8A8Simulation::restore() {
  torch::NoGradGuard no_grad;
  for (auto& [param, original] : saved_weights_) param.copy_(original);
  saved_weights_.clear();
  weight_errors_.clear();
  quantizing_ = false;
  points_->set_transform(nullptr);
}

at::Tensor W8A8Simulation::transform(const std::string& name, const at::Tensor& x) {
  if (lookups_.count(name)) {
    const auto delta_of = lookup_deltas_.find(name);
    if (!quantizing_ || delta_of == lookup_deltas_.end()) return x;  // calibrating, or the table kept in float
    // A looked-up row is its table row: quantizing it on its own grid is looking up the row-wise quantized table.
    if (options_.per_row_tables)
      return fake_quant_sym_per_row(x.reshape({-1, x.size(-1)}), options_.weight_bits).view_as(x);
    // Rows of a table quantized with the table's scale: x / delta lands on the table's own integer grid.
    const double delta = delta_of->second;
    if (delta == 0) return at::zeros_like(x);
    return fake_quant_asym(x, -delta * (1 << (options_.weight_bits - 1)),
                           delta * ((1 << (options_.weight_bits - 1)) - 1), options_.weight_bits);
  }
  if (options_.keep_float && options_.keep_float(name)) return x;
  auto it = estimators_.find(name);
  if (it == estimators_.end()) {
    TORCH_CHECK(!quantizing_, "W8A8Simulation: activation point ", name, " was not seen during calibration");
    it = estimators_.emplace(name, RangeEstimator(options_.ranges)).first;
    order_.push_back(name);
  }
  if (!quantizing_) {
    it->second.observe(x.detach());
    return x;
  }
  const auto [lo, hi] = it->second.range();
  return fake_quant_asym(x, lo, hi, options_.activation_bits);
}

std::vector<std::pair<std::string, std::pair<double, double>>> W8A8Simulation::ranges() const {
  std::vector<std::pair<std::string, std::pair<double, double>>> r;
  for (const auto& name : order_) r.emplace_back(name, estimators_.at(name).range());
  return r;
}

}  // namespace outeffhop::analysis
