// C++ API of the sparse probability maps (dispatcher calls), their float64 bisection oracle, and the backward written
// with differentiable ATen ops (used when a graph of the backward is requested).
#include "outeffhop/sparse_maps.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "checks.h"
#include "composites.h"

namespace outeffhop {

at::Tensor sparsemax(const at::Tensor& x, int64_t dim) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::sparsemax", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t)>();
  return op.call(x, dim);
}

at::Tensor entmax15(const at::Tensor& x, int64_t dim) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::entmax15", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t)>();
  return op.call(x, dim);
}

at::Tensor entmax_bisect(const at::Tensor& x, const at::Tensor& alpha, int64_t dim, int64_t n_iter) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::entmax_bisect", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>();
  return op.call(x, alpha, dim, n_iter);
}

namespace detail {

std::tuple<at::Tensor, at::Tensor> sparse_map_backward_formula(const at::Tensor& grad_out, const at::Tensor& out,
                                                               const at::Tensor& x, const at::Tensor& alpha,
                                                               int64_t dim) {
  const int64_t d = wrap_dim(dim, out.dim(), "sparse map backward");
  const auto support = out > 0;
  const auto safe_p = at::where(support, out, at::ones_like(out));
  const auto w = at::where(support, safe_p.pow(2 - alpha), at::zeros_like(out));
  const auto w_sum = w.sum(d, true);
  const auto q = (w * grad_out).sum(d, true) / at::where(w_sum > 0, w_sum, at::ones_like(w_sum));
  const auto grad_x = w * (grad_out - q);
  const auto plogp = at::where(support, safe_p * safe_p.log(), at::zeros_like(out));
  const auto x_support = at::where(support, x, at::zeros_like(x));  // masked (-inf) entries have w = 0
  const auto tau_prime =
      ((x_support * w).sum(d, true) - plogp.sum(d, true)) / at::where(w_sum > 0, w_sum, at::ones_like(w_sum));
  const auto dp_dalpha = (-plogp + (x_support - tau_prime) * w) * support / (alpha - 1);
  return {grad_x, (grad_out * dp_dalpha).sum(d, true)};
}

}  // namespace detail

namespace reference {

at::Tensor entmax_by_bisection(const at::Tensor& x, const at::Tensor& alpha, int64_t dim) {
  const int64_t d = detail::wrap_dim(dim, x.dim(), "reference::entmax_by_bisection");
  const auto z = x.to(at::kDouble);
  const auto b = alpha.to(at::kDouble) - 1;
  const auto scaled = z * b;
  const auto top = std::get<0>(scaled.max(d, true));
  auto lo = top - 1, hi = top;  // mass(lo) >= 1 > mass(hi) = 0
  auto mass = [&](const at::Tensor& tau) { return at::clamp_min(scaled - tau, 0).pow(1 / b).sum(d, true); };
  for (int i = 0; i < 200; ++i) {
    const auto mid = (lo + hi) / 2;
    const auto enough = mass(mid) >= 1;
    lo = at::where(enough, mid, lo);
    hi = at::where(enough, hi, mid);
  }
  const auto p = at::clamp_min(scaled - lo, 0).pow(1 / b);
  return p / p.sum(d, true);
}

}  // namespace reference
}  // namespace outeffhop
