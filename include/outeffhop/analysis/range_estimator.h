// Range estimators for static activation quantization (REFERENCE.md §4): observe calibration batches, then freeze.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>

namespace outeffhop::analysis {

enum class RangeMethod {
  kCurrentMinMax,  // the last batch's min and max
  kRunningMinMax,  // min and max, exponential moving average over batches (BERT's calibration)
  kPercentile,     // the (100 - p)th and p-th percentiles, moving average over batches (OPT: p = 99.999)
  kMse,            // per batch, the range [a min, a max] (a on a grid in (0, 1]) minimising the squared quantization
                   // error, moving average over batches
};

RangeMethod parse_range_method(const std::string& name);  // current_minmax | running_minmax | percentile | mse

struct RangeEstimatorOptions {
  RangeMethod method = RangeMethod::kRunningMinMax;
  double momentum = 0.9;         // weight of the previous estimate in the moving average
  double percentile = 99.999;    // kPercentile
  int64_t bits = 8;              // kMse: the quantizer the range is searched for
  int64_t mse_grid = 100;        // kMse: candidate ratios a = k / mse_grid
};

class RangeEstimator {
 public:
  explicit RangeEstimator(RangeEstimatorOptions options = {});
  static RangeEstimator frozen_at(std::pair<double, double> range);  // a range found before, frozen (min <= max)
  void observe(const at::Tensor& x);  // ignored once frozen
  void freeze() { frozen_ = true; }
  bool frozen() const { return frozen_; }
  bool initialised() const { return batches_ > 0; }
  std::pair<double, double> range() const;  // (min, max); throws before the first batch
  int64_t batches() const { return batches_; }

 private:
  std::pair<double, double> batch_range(const at::Tensor& x) const;
  RangeEstimatorOptions options_;
  double min_ = 0, max_ = 0;
  int64_t batches_ = 0;
  bool frozen_ = false;
};

}  // namespace outeffhop::analysis
