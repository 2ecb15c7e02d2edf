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

namespace {

// Shared by the sort-based maps: x in the compute type with dim last, shifted so that each row's maximum is 0 (the
// maps are shift-invariant; the shift keeps cumulative sums of ±1e4 logits exact enough). Rows of only -inf are
// shifted by 0 and flagged, so that they give zeros rather than NaN.
struct ShiftedRows {
  at::Tensor z;      // [..., cols], row max 0 (or all -inf)
  at::Tensor empty;  // [..., 1] bool: the row is all -inf
};

ShiftedRows shifted_rows(const at::Tensor& x, int64_t d) {
  const auto type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const auto z = x.movedim(d, -1).to(type);
  const auto top = std::get<0>(z.max(-1, true));
  const auto empty = top == -INFINITY;
  return {z - at::where(empty, at::zeros_like(top), top), empty};
}

// Back to x's layout and type; all -inf rows become zeros.
at::Tensor finish_rows(const at::Tensor& p, const ShiftedRows& r, const at::Tensor& x, int64_t d) {
  return at::where(r.empty, at::zeros_like(p), p).movedim(-1, d).to(x.scalar_type()).contiguous();
}

// 1, 2, ..., n along the last dim, shaped to broadcast against t.
at::Tensor counts(const at::Tensor& t) {
  std::vector<int64_t> shape(t.dim(), 1);
  shape.back() = t.size(-1);
  return at::arange(1, t.size(-1) + 1, t.options()).view(shape);
}

// The threshold tau of the support size k* (a count per row, >= 1 for rows with a finite entry).
at::Tensor at_support(const at::Tensor& tau, const at::Tensor& support) {
  const auto k = support.sum(-1, true).clamp_min(1);
  return tau.gather(-1, k - 1);
}

}  // namespace

at::Tensor sparsemax_composite(const at::Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.dim(), "sparsemax");
  if (x.numel() == 0) return x.clone();
  const auto r = shifted_rows(x, d);
  const auto sorted = std::get<0>(r.z.sort(-1, /*descending=*/true));
  const auto k = counts(sorted), cumulative = sorted.cumsum(-1);
  const auto support = (1 + k * sorted) > cumulative;  // a prefix of the sorted row
  const auto tau = (cumulative - 1) / k;
  return finish_rows(at::clamp_min(r.z - at_support(tau, support), 0), r, x, d);
}

at::Tensor entmax15_composite(const at::Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.dim(), "entmax15");
  if (x.numel() == 0) return x.clone();
  const auto r = shifted_rows(x, d);
  const auto half = r.z / 2;
  const auto sorted = std::get<0>(half.sort(-1, /*descending=*/true));
  const auto k = counts(sorted);
  // Peters et al. 2019: tau_k = mean_k - sqrt(max((1 - k (mean of squares_k - mean_k^2)) / k, 0)).
  const auto mean = sorted.cumsum(-1) / k, mean_sq = sorted.pow(2).cumsum(-1) / k;
  const auto delta = (1 - k * (mean_sq - mean.pow(2))) / k;
  const auto tau = mean - at::clamp_min(delta, 0).sqrt();
  const auto support = tau <= sorted;  // NaN (past the -inf entries) counts as outside
  return finish_rows(at::clamp_min(half - at_support(tau, support), 0).pow(2), r, x, d);
}

at::Tensor entmax_bisect_composite(const at::Tensor& x, const at::Tensor& alpha, int64_t dim, int64_t n_iter) {
  const int64_t d = wrap_dim(dim, x.dim(), "entmax_bisect");
  if (x.numel() == 0) return x.clone();
  auto shape = x.sizes().vec();
  shape[d] = 1;
  const auto r = shifted_rows(x, d);
  const auto b = alpha.to(r.z.scalar_type()).expand(shape).movedim(d, -1) - 1;
  const auto scaled = r.z * b;  // row max 0
  // mass(tau) = sum max(scaled - tau, 0)^(1/b) falls from >= 1 at tau = -1 to <= 1 at tau = -(1/n)^b.
  auto lo = at::full_like(b, -1.0);
  auto hi = -at::pow(1.0 / static_cast<double>(r.z.size(-1)), b);
  for (int64_t i = 0; i < n_iter; ++i) {
    const auto mid = (lo + hi) / 2;
    const auto enough = at::clamp_min(scaled - mid, 0).pow(1 / b).sum(-1, true) >= 1;
    lo = at::where(enough, mid, lo);
    hi = at::where(enough, hi, mid);
  }
  const auto p = at::clamp_min(scaled - lo, 0).pow(1 / b);
  return finish_rows(p / p.sum(-1, true), r, x, d);
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
