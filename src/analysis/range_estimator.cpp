// Range estimators for static activation quantization (see range_estimator.h).
#include "outeffhop/analysis/range_estimator.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "outeffhop/outliers.h"

namespace outeffhop::analysis {
namespace {

// The q-th quantile (q in [0, 1]) of all values, by the nearest rank (kthvalue works on any size, unlike quantile).
double nearest_rank_quantile(const at::Tensor& flat, double q) {
  const int64_t n = flat.numel();
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::llround(q * (n - 1))) + 1, 1, n);
  return std::get<0>(at::kthvalue(flat, k)).item<double>();
}

}  // namespace

RangeMethod parse_range_method(const std::string& name) {
  if (name == "current_minmax") return RangeMethod::kCurrentMinMax;
  if (name == "running_minmax") return RangeMethod::kRunningMinMax;
  if (name == "percentile") return RangeMethod::kPercentile;
  if (name == "mse") return RangeMethod::kMse;
  TORCH_CHECK(false, "unknown range estimator '", name, "'; known: current_minmax, running_minmax, percentile, mse");
}

RangeEstimator::RangeEstimator(RangeEstimatorOptions options) : options_(options) {
  TORCH_CHECK(options_.momentum >= 0 && options_.momentum < 1, "RangeEstimator: momentum must be in [0, 1)");
  TORCH_CHECK(options_.percentile > 50 && options_.percentile <= 100, "RangeEstimator: percentile must be in (50, 100]");
  TORCH_CHECK(options_.mse_grid >= 1, "RangeEstimator: mse_grid must be >= 1");
}

RangeEstimator RangeEstimator::frozen_at(std::pair<double, double> range) {
  TORCH_CHECK(std::isfinite(range.first) && std::isfinite(range.second) && range.first <= range.second,
              "RangeEstimator: a frozen range needs finite min <= max, got (", range.first, ", ", range.second, ")");
  RangeEstimator estimator;
  estimator.min_ = range.first, estimator.max_ = range.second, estimator.batches_ = 1, estimator.frozen_ = true;
  return estimator;
}

std::pair<double, double> RangeEstimator::batch_range(const at::Tensor& x) const {
  const auto flat = x.detach().reshape({-1}).to(at::kDouble);
  TORCH_CHECK(flat.numel() > 0, "RangeEstimator: empty batch");
  TORCH_CHECK(flat.isfinite().all().item<bool>(), "RangeEstimator: the batch has non-finite values");
  const double lo = flat.min().item<double>(), hi = flat.max().item<double>();
  switch (options_.method) {
    case RangeMethod::kCurrentMinMax:
    case RangeMethod::kRunningMinMax:
      return {lo, hi};
    case RangeMethod::kPercentile:
      return {nearest_rank_quantile(flat, 1 - options_.percentile / 100), nearest_rank_quantile(flat, options_.percentile / 100)};
    case RangeMethod::kMse: {
      std::pair<double, double> best{lo, hi};
      double best_error = INFINITY;
      for (int64_t k = 1; k <= options_.mse_grid; ++k) {
        const double a = static_cast<double>(k) / options_.mse_grid;
        const double error =
            (fake_quant_asym(flat, a * lo, a * hi, options_.bits) - flat).pow(2).sum().item<double>();
        if (error < best_error) best_error = error, best = {a * lo, a * hi};
      }
      return best;
    }
  }
  return {lo, hi};
}

void RangeEstimator::observe(const at::Tensor& x) {
  if (frozen_) return;
  at::AutoDispatchBelowADInplaceOrView no_autograd;  // statistics only: never recorded for autograd
  const auto [lo, hi] = batch_range(x);
  const bool average = batches_ > 0 && options_.method != RangeMethod::kCurrentMinMax;
  const double m = options_.momentum;
  min_ = average ? m * min_ + (1 - m) * lo : lo;
  max_ = average ? m * max_ + (1 - m) * hi : hi;
  ++batches_;
}

std::pair<double, double> RangeEstimator::range() const {
  TORCH_CHECK(batches_ > 0, "RangeEstimator: no calibration batch observed yet");
  return {min_, max_};
}

}  // namespace outeffhop::analysis
