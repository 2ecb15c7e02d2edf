// C++ API of the softmax family (calls the registered ops) and its float64 oracles.
#include "outeffhop/softmax.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "checks.h"

namespace outeffhop {

at::Tensor softmax_n(const at::Tensor& x, double n, int64_t dim) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::softmax_n", "")
                       .typed<at::Tensor(const at::Tensor&, double, int64_t)>();
  return op.call(x, n, dim);
}

at::Tensor clipped_softmax_n(const at::Tensor& x, double n, double gamma, double eta, int64_t dim) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::clipped_softmax_n", "")
                       .typed<at::Tensor(const at::Tensor&, double, double, double, int64_t)>();
  return op.call(x, n, gamma, eta, dim);
}

namespace detail {
// Composite body of clipped_softmax_n (registered as CompositeImplicitAutograd: autograd sees through it).
at::Tensor clipped_softmax_n_composite(const at::Tensor& x, double n, double gamma, double eta, int64_t dim) {
  TORCH_CHECK(std::isfinite(gamma) && std::isfinite(eta) && eta > gamma,
              "clipped_softmax_n: need finite gamma < eta (stretch (eta - gamma) > 0), got gamma=", gamma,
              " eta=", eta);
  return at::clamp(softmax_n(x, n, dim) * (eta - gamma) + gamma, 0.0, 1.0);
}
}  // namespace detail

at::Tensor null_mass(const at::Tensor& x, double n, int64_t dim) {
  detail::check_n(n, "null_mass");
  detail::check_floating(x, "null_mass", "x");
  const int64_t d = detail::wrap_dim(dim, x.dim(), "null_mass");
  if (n == 0) return at::zeros_like(x.sum(d));  // exactly 0, not 1 minus a rounded sum
  // n / (n + sum exp x) = exp(log n - logsumexp([x, log n])): no cancellation when the head barely abstains.
  const auto z = x.dim() == 0 ? x.reshape({1}) : x;
  auto shape = z.sizes().vec();
  shape[d] = 1;
  const auto log_n = at::full(shape, std::log(n), z.options());
  const auto out = at::exp(log_n.squeeze(d) - at::logsumexp(at::cat({z, log_n}, d), d));
  return x.dim() == 0 ? out.reshape({}) : out;
}

namespace reference {

at::Tensor softmax_n(const at::Tensor& x, double n, int64_t dim) {
  const auto z = x.to(at::kDouble);
  const double log_n = n > 0 ? std::log(n) : -INFINITY;
  auto m = at::clamp_min(std::get<0>(z.max(dim, /*keepdim=*/true)), log_n);
  m = at::where(at::isinf(m), at::zeros_like(m), m);  // all -inf (n = 0): any finite shift gives the same 0/0
  const auto e = at::exp(z - m);
  const auto denom = e.sum(dim, true) + n * at::exp(-m);
  return e / at::where(denom == 0, at::ones_like(denom), denom);
}

at::Tensor softmax_n_via_extra_logit(const at::Tensor& x, double n, int64_t dim) {
  const auto z = x.to(at::kDouble).movedim(dim, -1);
  auto extra_shape = z.sizes().vec();
  extra_shape.back() = 1;
  const auto extra = at::full(extra_shape, n > 0 ? std::log(n) : -INFINITY, z.options());
  const auto p = at::softmax(at::cat({z, extra}, -1), -1);
  return p.narrow(-1, 0, z.size(-1)).movedim(-1, dim);
}

}  // namespace reference
}  // namespace outeffhop
