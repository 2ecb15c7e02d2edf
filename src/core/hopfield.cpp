// Energy and retrieval dynamics of the outlier-efficient modern Hopfield model (paper eqs. 2.4-2.6), as compositions
// of ATen ops and softmax_n, plus their float64 oracles.
#include "outeffhop/hopfield.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>

#include "checks.h"
#include "composites.h"
#include "outeffhop/softmax.h"

namespace outeffhop {
namespace {

void check_hopfield_args(const at::Tensor& x, const at::Tensor& memories, double beta, double n, const char* op) {
  detail::check_floating(x, op, "x");
  detail::check_floating(memories, op, "memories");
  detail::check_rank(x, 2, op, "x", "B x d queries");
  detail::check_rank(memories, 2, op, "memories", "M x d stored patterns, one per row");
  TORCH_CHECK(x.size(1) == memories.size(1), op, ": pattern dims differ: x is ", x.sizes(), ", memories ",
              memories.sizes());
  TORCH_CHECK(memories.size(0) >= 1 && memories.size(1) >= 1, op, ": memories must be non-empty, got ",
              memories.sizes());
  TORCH_CHECK(x.scalar_type() == memories.scalar_type(), op, ": x and memories must share a dtype, got ",
              x.scalar_type(), " and ", memories.scalar_type());
  TORCH_CHECK(x.device() == memories.device(), op, ": x and memories must be on one device");
  detail::check_positive(beta, op, "beta");
  detail::check_n(n, op);
}

// beta^-1 log(n + sum_mu exp(beta s_mu)) along the last dim, stable for any size of beta * s.
at::Tensor lse_n(const at::Tensor& beta_scores, double beta, double n) {
  auto shape = beta_scores.sizes().vec();
  shape.back() = 1;
  const auto null_logit = at::full(shape, n > 0 ? std::log(n) : -INFINITY, beta_scores.options());
  return at::logsumexp(at::cat({beta_scores, null_logit}, -1), -1) / beta;
}

}  // namespace

namespace detail {

at::Tensor hopfield_energy_composite(const at::Tensor& x, const at::Tensor& memories, double beta, double n) {
  check_hopfield_args(x, memories, beta, n, "hopfield_energy");
  return -lse_n(beta * at::matmul(x, memories.t()), beta, n) + 0.5 * (x * x).sum(-1);
}

std::tuple<at::Tensor, at::Tensor> hopfield_retrieve_composite(const at::Tensor& x, const at::Tensor& memories,
                                                               double beta, double n, int64_t max_steps,
                                                               double eps) {
  check_hopfield_args(x, memories, beta, n, "hopfield_retrieve");
  TORCH_CHECK(max_steps >= 0, "hopfield_retrieve: max_steps must be >= 0, got ", max_steps);
  TORCH_CHECK(std::isfinite(eps) && eps >= 0, "hopfield_retrieve: eps must be finite and >= 0, got ", eps);
  auto state = x;
  auto steps = at::zeros({x.size(0)}, x.options().dtype(at::kLong));
  auto active = at::ones({x.size(0)}, x.options().dtype(at::kBool));
  for (int64_t t = 0; t < max_steps && active.any().item<bool>(); ++t) {
    const auto next = at::matmul(softmax_n(beta * at::matmul(state, memories.t()), n, -1), memories);
    // The stop rule looks at the state, not the association matrix (REFERENCE.md section 8); it takes no gradient.
    const auto moved = (next.detach() - state.detach()).norm(2, -1);
    state = at::where(active.unsqueeze(-1), next, state);
    steps = steps + active.to(at::kLong);
    active = active.logical_and(moved > eps);
  }
  return {state, steps};
}

}  // namespace detail

at::Tensor hopfield_energy(const at::Tensor& x, const at::Tensor& memories, double beta, double n) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::hopfield_energy", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, double)>();
  return op.call(x, memories, beta, n);
}

RetrieveResult hopfield_retrieve(const at::Tensor& x, const at::Tensor& memories, double beta, double n,
                                 int64_t max_steps, double eps) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("outeffhop::hopfield_retrieve", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, double, double, int64_t,
                                                    double)>();
  auto [state, steps] = op.call(x, memories, beta, n, max_steps, eps);
  return {state, steps};
}

namespace reference {

at::Tensor hopfield_energy(const at::Tensor& x, const at::Tensor& memories, double beta, double n) {
  const auto s = beta * at::matmul(x.to(at::kDouble), memories.to(at::kDouble).t());
  // Plain max shift, with log n in the max so n e^{-m} cannot overflow.
  const double log_n = n > 0 ? std::log(n) : -INFINITY;
  const auto m = at::clamp_min(std::get<0>(s.max(-1, true)), log_n);
  const auto lse = (m.squeeze(-1) + at::log(at::exp(s - m).sum(-1) + n * at::exp(-m.squeeze(-1)))) / beta;
  const auto x64 = x.to(at::kDouble);
  return -lse + 0.5 * (x64 * x64).sum(-1);
}

at::Tensor hopfield_update(const at::Tensor& x, const at::Tensor& memories, double beta, double n) {
  const auto mem = memories.to(at::kDouble);
  const auto p = outeffhop::reference::softmax_n(beta * at::matmul(x.to(at::kDouble), mem.t()), n, -1);
  return at::matmul(p, mem);
}

}  // namespace reference
}  // namespace outeffhop
