// Simulated W8A8 quantization (REFERENCE.md §4) of any module tree that exposes activation points: weights 8-bit
// symmetric per tensor (every Linear weight and LayerNorm gamma, in place; embedding tables through their lookup
// points, so a tied LM head stays float), activations 8-bit asymmetric per tensor with static ranges calibrated on a
// few batches and then frozen. Gate networks (modules under "alpha.") stay float. Beyond the paper: other widths,
// Linear weights with one scale per output channel (row) instead of one per tensor, and embedding tables per row.
#pragma once
#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "outeffhop/analysis/range_estimator.h"
#include "outeffhop/nn/activation_points.h"

namespace outeffhop::analysis {

struct W8A8Options {
  RangeEstimatorOptions ranges;  // how activation ranges are calibrated
  int64_t weight_bits = 8;
  int64_t activation_bits = 8;
  // Each Linear weight row (output channel) on its own symmetric grid; LayerNorm gammas stay per tensor.
  bool per_channel_weights = false;
  // Each embedding table row (one token's, or one position's) on its own symmetric grid, as row-wise quantized
  // embedding tables are stored; otherwise one scale per table.
  bool per_row_tables = false;
  // Activation points to leave in float (e.g. to find which point costs the most); empty: quantize every point.
  std::function<bool(const std::string&)> keep_float;
  // Weights to leave in float, by the name of their module (e.g. "model.decoder.layers.0.fc1", or a lookup's
  // "model.decoder.embed_tokens"); empty: none.
  std::function<bool(const std::string&)> keep_float_weights;
};

// What quantize() did to one weight: its largest magnitude, its root mean square and the relative error
// |q - w| / |w| (Frobenius) of its quantized copy (0 for a weight kept in float).
struct WeightError {
  std::string name;  // the module's (a lookup table's: its point's) name + ".weight"
  double max_abs = 0;
  double rms = 0;
  double relative_error = 0;
  bool kept_float = false;
  bool lookup = false;  // an embedding table quantized through its lookup point (whose name is `name` less ".weight")
};

class W8A8Simulation {
 public:
  // lookups: points whose values are rows of an embedding table (the table given), quantized with that table's
  // symmetric weight scale rather than an activation range.
  W8A8Simulation(torch::nn::Module& model, nn::ActivationPointsPtr points, std::map<std::string, at::Tensor> lookups,
                 W8A8Options options = {});
  ~W8A8Simulation();
  W8A8Simulation(const W8A8Simulation&) = delete;
  W8A8Simulation& operator=(const W8A8Simulation&) = delete;

  void start_calibration();  // forward passes from now on record activation ranges; values pass unchanged
  void quantize();           // freezes the ranges; quantizes weights in place and activations at every point
  // quantize() with the ranges an earlier calibration of this model froze (its ranges()), without calibrating:
  // calibration passes values unchanged, so its ranges do not depend on keep_float. Points keep_float names are
  // skipped; a point missing from `ranges` fails when it is reached, as an uncalibrated one does.
  void quantize(const std::vector<std::pair<std::string, std::pair<double, double>>>& ranges);
  void restore();            // the float weights back, no transform

  // Calibrated (min, max) per activation point, in the order first seen.
  std::vector<std::pair<std::string, std::pair<double, double>>> ranges() const;
  // Every weight the last quantize() saw, the lookup tables first, then in module order (empty before it and after
  // restore()).
  const std::vector<WeightError>& weight_errors() const { return weight_errors_; }

 private:
  at::Tensor transform(const std::string& name, const at::Tensor& x);

  torch::nn::Module& model_;
  nn::ActivationPointsPtr points_;
  std::map<std::string, at::Tensor> lookups_;
  std::map<std::string, double> lookup_deltas_;  // each table's weight scale, fixed by quantize()
  W8A8Options options_;
  std::vector<std::string> order_;
  std::map<std::string, RangeEstimator> estimators_;
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_weights_;  // (parameter, float copy)
  std::vector<WeightError> weight_errors_;
  bool calibrating_ = false;
  bool quantizing_ = false;
};

}  // namespace outeffhop::analysis
