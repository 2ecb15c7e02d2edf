// Sparse probability maps on rows, forward and backward side by side: sparsemax (Martins & Astudillo 2016),
// 1.5-entmax (exact, sort-based; Peters et al. 2019) and alpha-entmax by bisection (Correia et al. 2019).
// Each row is computed in double. A NaN in a row makes the row NaN; a row of only -inf gives zeros.
#include "sparse_maps_kernel.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

namespace outeffhop::kernels::cpu {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

enum class RowKind { kRegular, kNaN, kEmpty };

// Copies a row to double and classifies it: any NaN, or no finite-or-+inf entry at all.
template <typename T>
RowKind load_row(const T* z, int64_t cols, std::vector<double>& x) {
  bool any_nan = false, any_kept = false;
  for (int64_t j = 0; j < cols; ++j) {
    x[j] = static_cast<double>(z[j]);
    any_nan |= std::isnan(x[j]);
    any_kept |= x[j] != kNegInf;
  }
  return any_nan ? RowKind::kNaN : (any_kept ? RowKind::kRegular : RowKind::kEmpty);
}

template <typename T>
bool write_special_row(RowKind kind, T* out, int64_t cols) {
  if (kind == RowKind::kRegular) return false;
  std::fill(out, out + cols, kind == RowKind::kNaN ? std::numeric_limits<T>::quiet_NaN() : T(0));
  return true;
}

// Gradient of maps whose Jacobian is diag(w) - w w^T / sum(w) with w >= 0 on the support: sparsemax (w = 1 on the
// support), 1.5-entmax (w = sqrt p) and alpha-entmax (w = p^(2 - alpha)). dz = w g - w (sum w g / sum w).
template <typename T>
void weighted_simplex_backward(const T* g, const std::vector<double>& w, T* dz, int64_t cols) {
  double wg = 0, ws = 0;
  for (int64_t j = 0; j < cols; ++j) wg += w[j] * static_cast<double>(g[j]), ws += w[j];
  const double q = ws > 0 ? wg / ws : 0.0;
  for (int64_t j = 0; j < cols; ++j) dz[j] = static_cast<T>(w[j] * (static_cast<double>(g[j]) - q));
}

}  // namespace

// Euclidean projection onto the simplex: p = max(z - tau, 0) with the largest k such that 1 + k z_(k) > sum_{j<=k} z_(j).
template <typename T>
void sparsemax_forward(const SparseMapParams<T>& p, int64_t row_begin, int64_t row_end) {
  std::vector<double> x(p.cols), sorted(p.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    T* out = p.out + r * p.cols;
    if (write_special_row(load_row(p.in + r * p.cols, p.cols, x), out, p.cols)) continue;
    sorted = x;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    double cumsum = 0, tau = 0;
    for (int64_t k = 1; k <= p.cols && sorted[k - 1] != kNegInf; ++k) {
      cumsum += sorted[k - 1];
      if (1 + k * sorted[k - 1] > cumsum) tau = (cumsum - 1) / k;
    }
    for (int64_t j = 0; j < p.cols; ++j) out[j] = static_cast<T>(std::max(x[j] - tau, 0.0));
  }
}

template <typename T>
void sparsemax_backward(const SparseMapBackwardParams<T>& p, int64_t row_begin, int64_t row_end) {
  std::vector<double> w(p.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const T* y = p.out + r * p.cols;
    for (int64_t j = 0; j < p.cols; ++j) w[j] = y[j] > 0 ? 1.0 : 0.0;
    weighted_simplex_backward(p.grad_out + r * p.cols, w, p.grad_in + r * p.cols, p.cols);
  }
}

// p = max(z/2 - tau, 0)^2 with tau from the largest support size k whose quadratic root stays below z_(k)/2.
template <typename T>
void entmax15_forward(const SparseMapParams<T>& p, int64_t row_begin, int64_t row_end) {
  std::vector<double> x(p.cols), sorted(p.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    T* out = p.out + r * p.cols;
    if (write_special_row(load_row(p.in + r * p.cols, p.cols, x), out, p.cols)) continue;
    const double top = *std::max_element(x.begin(), x.end());
    for (double& v : x) v = (v - top) / 2;  // shift for stability (entmax is shift invariant), then halve
    sorted = x;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    double sum = 0, sum_sq = 0, tau = sorted[0] - 1;
    for (int64_t k = 1; k <= p.cols && sorted[k - 1] != kNegInf; ++k) {
      sum += sorted[k - 1], sum_sq += sorted[k - 1] * sorted[k - 1];
      const double mean = sum / k;
      const double delta = (1 - k * (sum_sq / k - mean * mean)) / k;
      const double tau_k = mean - std::sqrt(std::max(delta, 0.0));
      if (tau_k <= sorted[k - 1]) tau = tau_k;
    }
    for (int64_t j = 0; j < p.cols; ++j) {
      const double u = std::max(x[j] - tau, 0.0);
      out[j] = static_cast<T>(u * u);
    }
  }
}

template <typename T>
void entmax15_backward(const SparseMapBackwardParams<T>& p, int64_t row_begin, int64_t row_end) {
  std::vector<double> w(p.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const T* y = p.out + r * p.cols;
    for (int64_t j = 0; j < p.cols; ++j) w[j] = std::sqrt(std::max(static_cast<double>(y[j]), 0.0));
    weighted_simplex_backward(p.grad_out + r * p.cols, w, p.grad_in + r * p.cols, p.cols);
  }
}

// p_i = max((alpha - 1) z_i - tau, 0)^(1 / (alpha - 1)); tau solves sum p = 1 inside the bracket [max - 1 (sum >= 1),
// max - (1/cols)^(alpha - 1) (sum <= 1)]. Each of at most n_iter steps evaluates the mass and its first two
// derivatives (no extra pow), shrinks the bracket, and takes a Halley step (a bisection step when it would leave the
// bracket); it stops once a step no longer moves tau (or after n_iter). The mass is smooth and convex in tau for
// alpha <= 2, so from the bracket's left end a handful of steps reach double precision where plain bisection needs
// ~50 (Halley: 3-4 steps on rows of 5-28 scores, Newton 4.5-5.5). Then p is renormalised.
template <typename T>
void entmax_bisect_forward(const SparseMapParams<T>& p, int64_t row_begin, int64_t row_end) {
  std::vector<double> x(p.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    T* out = p.out + r * p.cols;
    if (write_special_row(load_row(p.in + r * p.cols, p.cols, x), out, p.cols)) continue;
    const double b = static_cast<double>(p.alpha[r]) - 1, inv_b = 1 / b;
    for (double& v : x) v *= b;
    const double top = *std::max_element(x.begin(), x.end());
    double lo = top - 1, hi = top - std::pow(1.0 / p.cols, b), tau = lo;
    for (int64_t it = 0; it < p.n_iter; ++it) {
      double mass = 0, slope = 0, curve = 0;  // sums of d^(1/b), d^(1/b - 1), d^(1/b - 2) over d = x - tau > 0
      for (double v : x) {
        if (v <= tau) continue;
        const double d = v - tau, q = std::pow(d, inv_b - 1);
        mass += q * d, slope += q, curve += q / d;
      }
      (mass >= 1 ? lo : hi) = tau;
      const double tol = 4 * std::numeric_limits<double>::epsilon() * std::max(1.0, std::abs(tau));
      // A vanishing step means tau is the root. Test it before the bracket check: at the first iterate
      // tau = lo is often already the root (one entry carries all the mass), its step lands on lo, and the
      // safeguard would then bisect toward it for every remaining step.
      double next = (lo + hi) / 2;
      if (slope > 0) {
        // Halley's step on f = mass - 1 (f' = -slope / b, f'' = (1/b)(1/b - 1) curve); Newton's where f'' is not
        // finite (alpha > 2 and an entry just above tau) or would turn the step around.
        const double f = mass - 1, f1 = -inv_b * slope, f2 = inv_b * (inv_b - 1) * curve;
        const double halley_denominator = 2 * f1 * f1 - f * f2;
        const double step = std::isfinite(f2) && halley_denominator > 0 ? -2 * f * f1 / halley_denominator : -f / f1;
        if (std::abs(step) <= tol) break;
        if (tau + step > lo && tau + step < hi) next = tau + step;
      }
      if (std::abs(next - tau) <= tol) break;
      tau = next;
    }
    // tau stays strictly below hi <= max, so the top entry keeps some mass.
    double total = 0;
    for (double& v : x) total += (v = v > tau ? std::pow(v - tau, inv_b) : 0.0);  // x now holds the masses
    for (int64_t j = 0; j < p.cols; ++j) out[j] = static_cast<T>(x[j] / total);
  }
}

// dL/dz as for every map of this family with w = p^(2 - alpha). dL/dalpha from differentiating
// p_i = u_i^(1/b), u_i = b z_i - tau(b), b = alpha - 1, under sum p = 1:
//   dp_i/db = (-p_i log p_i + (z_i - tau') w_i) / b,   tau' = (sum z w - sum p log p) / sum w.
template <typename T>
void entmax_bisect_backward(const SparseMapBackwardParams<T>& p, int64_t row_begin, int64_t row_end) {
  std::vector<double> w(p.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const T* y = p.out + r * p.cols;
    const T* g = p.grad_out + r * p.cols;
    const T* z = p.in + r * p.cols;
    const double alpha = static_cast<double>(p.alpha[r]), b = alpha - 1;
    double ws = 0, zw = 0, plogp = 0;
    for (int64_t j = 0; j < p.cols; ++j) {
      const double pj = static_cast<double>(y[j]);
      w[j] = pj > 0 ? std::pow(pj, 2 - alpha) : 0.0;
      if (pj > 0) ws += w[j], zw += static_cast<double>(z[j]) * w[j], plogp += pj * std::log(pj);
    }
    weighted_simplex_backward(g, w, p.grad_in + r * p.cols, p.cols);
    if (!p.grad_alpha) continue;
    const double tau_prime = ws > 0 ? (zw - plogp) / ws : 0.0;
    double ga = 0;
    for (int64_t j = 0; j < p.cols; ++j) {
      const double pj = static_cast<double>(y[j]);
      if (pj > 0) ga += static_cast<double>(g[j]) * (-pj * std::log(pj) + (z[j] - tau_prime) * w[j]) / b;
    }
    p.grad_alpha[r] = static_cast<T>(ga);
  }
}

#define OUTEFFHOP_INSTANTIATE(T)                                                                     \
  template void sparsemax_forward<T>(const SparseMapParams<T>&, int64_t, int64_t);                   \
  template void sparsemax_backward<T>(const SparseMapBackwardParams<T>&, int64_t, int64_t);          \
  template void entmax15_forward<T>(const SparseMapParams<T>&, int64_t, int64_t);                    \
  template void entmax15_backward<T>(const SparseMapBackwardParams<T>&, int64_t, int64_t);           \
  template void entmax_bisect_forward<T>(const SparseMapParams<T>&, int64_t, int64_t);               \
  template void entmax_bisect_backward<T>(const SparseMapBackwardParams<T>&, int64_t, int64_t);
OUTEFFHOP_INSTANTIATE(float)
OUTEFFHOP_INSTANTIATE(double)
#undef OUTEFFHOP_INSTANTIATE

}  // namespace outeffhop::kernels::cpu
