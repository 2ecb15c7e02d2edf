// Binary dense associative memory (Krotov & Hopfield 2016): asynchronous sign updates, energy (see the header).
#include "outeffhop/krotov_hopfield.h"

#include <ATen/ATen.h>

namespace outeffhop {
namespace {

void check_binary(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 2 && at::isFloatingType(t.scalar_type()), "krotov_hopfield: ", name,
              " must be a floating 2-D tensor of +-1 values, got ", t.scalar_type(), " ", t.sizes());
  TORCH_CHECK(t.abs().eq(1).all().item<bool>(), "krotov_hopfield: ", name, " must hold only -1 and +1");
}

// F(x / d) = max(x / d, 0)^n: the rescaled rectified polynomial (double).
at::Tensor rectified_power(const at::Tensor& x, double d, int64_t n) { return at::relu(x / d).pow(n); }

}  // namespace

KrotovHopfieldResult krotov_hopfield_retrieve(const at::Tensor& patterns, const at::Tensor& queries, int64_t power,
                                              int64_t max_sweeps) {
  check_binary(patterns, "patterns");
  check_binary(queries, "queries");
  TORCH_CHECK(patterns.size(1) == queries.size(1), "krotov_hopfield: patterns and queries differ in d: ",
              patterns.size(1), " vs ", queries.size(1));
  TORCH_CHECK(power >= 2 && max_sweeps >= 1, "krotov_hopfield: need power >= 2 and max_sweeps >= 1");
  at::AutoDispatchBelowADInplaceOrView no_autograd;  // a discrete dynamics: nothing to differentiate
  const auto xi = patterns.to(at::kDouble);                  // M x d
  auto s = queries.to(at::kDouble).clone();                  // B x d
  auto h = at::matmul(s, xi.t());                            // B x M: overlaps xi_mu . s, kept up to date
  const double d = static_cast<double>(xi.size(1));
  auto sweeps = at::zeros({s.size(0)}, at::kLong);
  auto active = at::ones({s.size(0)}, at::kBool);
  for (int64_t sweep = 0; sweep < max_sweeps && active.any().item<bool>(); ++sweep) {
    auto changed = at::zeros({s.size(0)}, at::kBool);
    for (int64_t i = 0; i < xi.size(1); ++i) {
      const auto column = xi.select(1, i);                   // M: xi_mu,i
      const auto s_i = s.select(1, i);                       // B
      const auto rest = h - s_i.unsqueeze(1) * column;       // B x M: overlaps without neuron i
      const auto field = (rectified_power(rest + column, d, power) - rectified_power(rest - column, d, power)).sum(1);
      // A zero field keeps the current value (so a fixed point stays fixed).
      const auto next = at::where(field > 0, at::ones_like(s_i), at::where(field < 0, -at::ones_like(s_i), s_i));
      const auto update = at::where(active, next, s_i);
      h += (update - s_i).unsqueeze(1) * column;
      changed = changed.logical_or(update != s_i);
      s_i.copy_(update);
    }
    sweeps += active.to(at::kLong);
    active = active.logical_and(changed);
  }
  return {s.to(queries.scalar_type()), sweeps};
}

at::Tensor krotov_hopfield_energy(const at::Tensor& patterns, const at::Tensor& states, int64_t power) {
  check_binary(patterns, "patterns");
  check_binary(states, "states");
  const auto overlaps = at::matmul(states.to(at::kDouble), patterns.to(at::kDouble).t());
  return -rectified_power(overlaps, static_cast<double>(patterns.size(1)), power).sum(1);
}

}  // namespace outeffhop
