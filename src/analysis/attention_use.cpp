// Attention mass per layer (see attention_use.h).
#include "outeffhop/analysis/attention_use.h"

#include <ATen/ATen.h>

namespace outeffhop::analysis {

void AttentionUse::add(const std::string& point, const at::Tensor& probabilities) {
  TORCH_CHECK(probabilities.dim() >= 2 && probabilities.size(-1) >= 1, "AttentionUse: '", point,
              "' must be ... x T_q x T_k with T_k >= 1, got shape ", probabilities.sizes());
  const auto p = probabilities.detach().to(at::kDouble).reshape({-1, probabilities.size(-1)});
  const auto mass = p.sum(-1);
  auto& s = sums(point);
  s.rows += p.size(0);
  s.low_rows += (mass < 0.5).sum().item<int64_t>();
  s.mass += mass.sum().item<double>();
  s.first_key += p.select(1, 0).sum().item<double>();
  const auto spread = mass > 0;  // NaN rows fail this too
  const auto q = p / at::where(spread, mass, at::ones_like(mass)).unsqueeze(-1);
  const auto entropy = -(q * at::where(q > 0, q.log(), at::zeros_like(q))).sum(-1);
  s.spread_rows += spread.sum().item<int64_t>();
  s.entropy += entropy.masked_select(spread).sum().item<double>();
}

void AttentionUse::add_gates(const std::string& point, const at::Tensor& gates) {
  const auto g = gates.detach().to(at::kDouble);
  auto& s = sums(point);
  s.gates += g.numel();
  s.low_gates += (g < 0.5).sum().item<int64_t>();
  s.gate += g.sum().item<double>();
}

AttentionUse::Sums& AttentionUse::sums(const std::string& point) {
  auto [it, fresh] = sums_.try_emplace(point);
  if (fresh) order_.push_back(point);
  return it->second;
}

std::vector<AttentionUsePoint> AttentionUse::points() const {
  std::vector<AttentionUsePoint> out;
  for (const auto& name : order_) {
    const auto& s = sums_.at(name);
    const double rows = s.rows > 0 ? static_cast<double>(s.rows) : 1.0;
    const double gates = s.gates > 0 ? static_cast<double>(s.gates) : 1.0;
    const double spread = s.spread_rows > 0 ? static_cast<double>(s.spread_rows) : 1.0;
    out.push_back({name, s.rows, s.mass / rows, s.low_rows / rows, s.first_key / rows, s.spread_rows,
                   s.entropy / spread, s.gates, s.gate / gates, s.low_gates / gates});
  }
  return out;
}

}  // namespace outeffhop::analysis
