// Streaming outlier statistics (see outlier_stats.h).
#include "outeffhop/analysis/outlier_stats.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <regex>

#include "outeffhop/outliers.h"

namespace outeffhop::analysis {

void OutlierStats::add(const std::string& module, const at::Tensor& x) {
  at::AutoDispatchBelowADInplaceOrView no_autograd;  // statistics only: never recorded for autograd
  const auto rows = x.detach();
  const auto kurt = kurtosis(rows).to(at::kDouble);
  const auto norm = inf_norm(rows).to(at::kDouble);
  if (!sums_.count(module)) order_.push_back(module);
  auto& s = sums_[module];
  s.rows += rows.size(0);
  s.kurtosis += kurt.sum().item<double>();
  s.inf_norm += norm.sum().item<double>();
  s.max_inf_norm = std::max(s.max_inf_norm, norm.max().item<double>());
}

std::vector<ModuleOutliers> OutlierStats::modules() const {
  std::vector<ModuleOutliers> out;
  for (const auto& name : order_) {
    const auto& s = sums_.at(name);
    out.push_back({name, s.rows, s.kurtosis / s.rows, s.inf_norm / s.rows, s.max_inf_norm});
  }
  return out;
}

OutlierSummary summarize(const std::vector<ModuleOutliers>& modules) {
  OutlierSummary summary;
  for (const auto& m : modules) {
    summary.avg_kurtosis += m.mean_kurtosis;
    summary.max_inf_norm = std::max(summary.max_inf_norm, m.mean_inf_norm);
  }
  summary.modules = static_cast<int64_t>(modules.size());
  if (!modules.empty()) summary.avg_kurtosis /= static_cast<double>(modules.size());
  return summary;
}

OutlierSummary OutlierStats::summary() const { return summarize(modules()); }

std::map<int64_t, OutlierSummary> OutlierStats::per_layer() const {
  static const std::regex layer_number(R"((?:^|\.)(?:layers?|blocks|h|encode_blocks)\.(\d+)(?:\.|$))");
  std::map<int64_t, std::vector<ModuleOutliers>> groups;
  for (const auto& m : modules()) {
    std::smatch match;
    groups[std::regex_search(m.module, match, layer_number) ? std::stoll(match[1].str()) : -1].push_back(m);
  }
  std::map<int64_t, OutlierSummary> out;
  for (const auto& [layer, members] : groups) out[layer] = summarize(members);
  return out;
}

void OutlierStats::reset() {
  order_.clear();
  sums_.clear();
}

}  // namespace outeffhop::analysis
