// Attention mass per layer (see attention_use.h).
#include "outeffhop/analysis/attention_use.h"

#include <ATen/ATen.h>

namespace outeffhop::analysis {

void AttentionUse::add(const std::string& point, const at::Tensor& probabilities) {
  TORCH_CHECK(probabilities.dim() >= 2 && probabilities.size(-1) >= 1, "AttentionUse: '", point,
              "' must be ... x T_q x T_k with T_k >= 1, got shape ", probabilities.sizes());
  const auto p = probabilities.detach().to(at::kDouble).reshape({-1, probabilities.size(-1)});
  const auto mass = p.sum(-1);
  auto [it, fresh] = sums_.try_emplace(point);
  if (fresh) order_.push_back(point);
  auto& s = it->second;
  s.rows += p.size(0);
  s.low_rows += (mass < 0.5).sum().item<int64_t>();
  s.mass += mass.sum().item<double>();
  s.first_key += p.select(1, 0).sum().item<double>();
}

std::vector<AttentionUsePoint> AttentionUse::points() const {
  std::vector<AttentionUsePoint> out;
  for (const auto& name : order_) {
    const auto& s = sums_.at(name);
    const double rows = s.rows > 0 ? static_cast<double>(s.rows) : 1.0;
    out.push_back({name, s.rows, s.mass / rows, s.low_rows / rows, s.first_key / rows});
  }
  return out;
}

}  // namespace outeffhop::analysis
