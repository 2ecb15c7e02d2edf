// Outlier metrics and fake quantizers: composite bodies (registered as CompositeImplicitAutograd) and the C++ API.
#include "outeffhop/outliers.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>

#include "checks.h"
#include "composites.h"

namespace outeffhop {
namespace {

at::Tensor per_sample_rows(const at::Tensor& x, const char* op) {
  detail::check_floating(x, op, "x");
  TORCH_CHECK(x.dim() >= 1 && x.size(0) >= 1, op, ": x must be B x ... with B >= 1, got shape ", x.sizes());
  return x.reshape({x.size(0), -1});
}

void check_bits(int64_t bits, const char* op) {
  TORCH_CHECK(bits >= 2 && bits <= 16, op, ": bits must be in 2..16, got ", bits);
}

// Straight-through estimator: the forward value of q, the gradient of x.
at::Tensor straight_through(const at::Tensor& x, const at::Tensor& q) { return x + (q - x).detach(); }

}  // namespace

namespace detail {

at::Tensor kurtosis_composite(const at::Tensor& x) {
  const auto rows = per_sample_rows(x, "kurtosis");
  TORCH_CHECK(rows.size(1) >= 2, "kurtosis: each sample needs at least 2 values (unbiased std), got ", rows.size(1));
  const auto r = rows.to(at::kDouble);
  const auto centered = r - r.mean(1, true);
  // Squares rather than pow(4) and std(): one tensor of squared deviations gives both moments, without a second
  // Welford pass (the outlier tracking of small models calls this on every module output).
  const auto squared = centered.square();
  const auto fourth = squared.square().mean(1);
  const auto variance = squared.sum(1) / static_cast<double>(rows.size(1) - 1);  // unbiased
  return (fourth / (variance.square() + 1e-6)).to(x.scalar_type());
}

at::Tensor inf_norm_composite(const at::Tensor& x) {
  return std::get<0>(per_sample_rows(x, "inf_norm").abs().max(1));
}

at::Tensor fake_quant_asym_composite(const at::Tensor& x, double xmin, double xmax, int64_t bits) {
  check_floating(x, "fake_quant_asym", "x");
  check_bits(bits, "fake_quant_asym");
  TORCH_CHECK(std::isfinite(xmin) && std::isfinite(xmax) && xmin <= xmax,
              "fake_quant_asym: need finite xmin <= xmax, got [", xmin, ", ", xmax, "]");
  const double lo = std::min(xmin, 0.0), hi = std::max(xmax, 0.0);
  if (hi == lo) return straight_through(x.clamp(0.0, 0.0), at::zeros_like(x));
  const double levels = std::ldexp(1.0, static_cast<int>(bits)) - 1;
  const auto [delta, zero_point] = asym_quant_params(xmin, xmax, bits);
  const auto inside = x.clamp(lo, hi);
  const auto q = (at::clamp(at::round(inside.detach() / delta) + static_cast<double>(zero_point), 0.0, levels) -
                  static_cast<double>(zero_point)) * delta;
  return straight_through(inside, q);
}

at::Tensor fake_quant_sym_composite(const at::Tensor& w, int64_t bits) {
  check_floating(w, "fake_quant_sym", "w");
  check_bits(bits, "fake_quant_sym");
  if (w.numel() == 0) return w.clone();
  const double top = std::ldexp(1.0, static_cast<int>(bits) - 1);
  const double scale = w.detach().abs().max().item<double>();
  if (scale == 0) return straight_through(w, at::zeros_like(w));
  const double delta = scale / (top - 1);
  const auto q = at::clamp(at::round(w.detach() / delta), -top, top - 1) * delta;
  return straight_through(w, q);
}

}  // namespace detail

namespace {
template <typename Signature>
c10::TypedOperatorHandle<Signature> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}
}  // namespace

at::Tensor kurtosis(const at::Tensor& x) {
  static auto h = op<at::Tensor(const at::Tensor&)>("outeffhop::kurtosis");
  return h.call(x);
}

at::Tensor inf_norm(const at::Tensor& x) {
  static auto h = op<at::Tensor(const at::Tensor&)>("outeffhop::inf_norm");
  return h.call(x);
}

AffineQuantParams asym_quant_params(double xmin, double xmax, int64_t bits) {
  const double lo = std::min(xmin, 0.0), hi = std::max(xmax, 0.0);
  if (hi == lo) return {};
  const double delta = (hi - lo) / (std::ldexp(1.0, static_cast<int>(bits)) - 1);
  // The default rounding mode: half to even.
  return {delta, static_cast<int64_t>(std::nearbyint(-lo / delta))};
}

at::Tensor fake_quant_asym(const at::Tensor& x, double xmin, double xmax, int64_t bits) {
  static auto h = op<at::Tensor(const at::Tensor&, double, double, int64_t)>("outeffhop::fake_quant_asym");
  return h.call(x, xmin, xmax, bits);
}

at::Tensor fake_quant_sym(const at::Tensor& w, int64_t bits) {
  static auto h = op<at::Tensor(const at::Tensor&, int64_t)>("outeffhop::fake_quant_sym");
  return h.call(w, bits);
}

}  // namespace outeffhop
