// Streaming outlier statistics of hooked activations, aggregated as the paper's tables were (REFERENCE.md §3):
// per module, the per-row kurtosis and inf-norm are averaged over every evaluated row; then "avg kurtosis" is the mean
// over modules and "max inf norm" the max over modules of the row-averaged inf-norm. Only running sums are kept.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace outeffhop::analysis {

struct ModuleOutliers {
  std::string module;
  int64_t rows = 0;
  double mean_kurtosis = 0;
  double mean_inf_norm = 0;
  double max_inf_norm = 0;  // the largest single row's inf-norm (beyond the paper: how extreme the worst row is)
};

struct OutlierSummary {
  double avg_kurtosis = 0;  // mean over modules of their mean kurtosis
  double max_inf_norm = 0;  // max over modules of their mean inf-norm
  int64_t modules = 0;
};

class OutlierStats {
 public:
  // x: activations of `module`, one row per entry of dim 0 (B x ... for per-sample modules; reshape OPT's fc2 and
  // FFN LayerNorm outputs to (B*T) x d first, as the paper's hooks saw them).
  void add(const std::string& module, const at::Tensor& x);

  std::vector<ModuleOutliers> modules() const;  // in the order first seen
  OutlierSummary summary() const;
  // Modules grouped by the number after "layers." / "layer." / "blocks." / "h." / "encode_blocks." (STanHop-Net's
  // encoder scales) in their names; modules without one (embeddings, final norms, STanHop's decoder) under -1.
  std::map<int64_t, OutlierSummary> per_layer() const;
  void reset();

 private:
  struct Sums {
    int64_t rows = 0;
    double kurtosis = 0, inf_norm = 0, max_inf_norm = 0;
  };
  std::vector<std::string> order_;
  std::map<std::string, Sums> sums_;
};

// The summary of a set of module results (used for the whole model and for each layer).
OutlierSummary summarize(const std::vector<ModuleOutliers>& modules);

}  // namespace outeffhop::analysis
