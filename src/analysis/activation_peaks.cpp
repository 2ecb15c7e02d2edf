// Locations of the largest activations (see activation_peaks.h).
#include "outeffhop/analysis/activation_peaks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace outeffhop::analysis {

void ActivationPeaks::add(const std::string& module, const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 2, "ActivationPeaks: '", module, "' must be B x ... x d, got shape ", x.sizes());
  const int64_t B = x.size(0), d = x.size(-1);
  if (B == 0 || d == 0) return;
  const auto magnitude = x.detach().to(at::kFloat).abs().reshape({B, -1, d});
  const int64_t positions = magnitude.size(1);
  auto [it, fresh] = entries_.try_emplace(module);
  auto& e = it->second;
  if (fresh) order_.push_back(module), e.peak.module = module;
  if (static_cast<int64_t>(e.position_counts.size()) < positions) e.position_counts.resize(positions, 0);
  // Each sample's largest |x|: its position (a NaN counts as largest, as max does).
  const auto per_position = std::get<0>(magnitude.max(-1));  // B x positions
  const auto sample_position = std::get<1>(per_position.max(-1));
  const auto where = sample_position.contiguous();
  const auto at_position = where.accessor<int64_t, 1>();
  for (int64_t b = 0; b < B; ++b) ++e.position_counts[at_position[b]];
  const auto flat_index = magnitude.reshape(-1).argmax().item<int64_t>();
  const double value = magnitude.reshape(-1)[flat_index].item<double>();
  if (e.peak.samples == 0 || value > e.peak.value || std::isnan(value)) {
    e.peak.value = value;
    e.peak.sample = e.peak.samples + flat_index / (positions * d);
    e.peak.position = flat_index / d % positions;
    e.peak.dim = flat_index % d;
  }
  e.peak.samples += B;
}

std::vector<ActivationPeak> ActivationPeaks::peaks() const {
  std::vector<ActivationPeak> out;
  for (const auto& name : order_) {
    const auto& e = entries_.at(name);
    auto p = e.peak;
    const auto top = std::max_element(e.position_counts.begin(), e.position_counts.end());
    p.usual_position = top - e.position_counts.begin();
    p.usual_share = p.samples > 0 ? static_cast<double>(*top) / static_cast<double>(p.samples) : 0.0;
    out.push_back(p);
  }
  return out;
}

}  // namespace outeffhop::analysis
