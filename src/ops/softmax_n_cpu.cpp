// CPU implementation of softmax_n and its backward: moves `dim` last, runs the row kernel in parallel over rows.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../kernels/cpu/softmax_n_kernel.h"
#include "softmax_n_common.h"

namespace outeffhop {
namespace {

int64_t grain_rows(int64_t cols) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)); }

at::Tensor softmax_n_cpu(const at::Tensor& x, double n, int64_t dim) {
  const int64_t d = detail::check_softmax_n(x, n, dim);
  if (x.dim() == 0) return softmax_n_cpu(x.reshape({1}), n, 0).reshape({});
  const auto in = detail::to_rows(x, d, detail::compute_type(x));
  auto out = at::empty_like(in.data);
  AT_DISPATCH_FLOATING_TYPES(in.data.scalar_type(), "softmax_n_cpu", [&] {
    const auto p = detail::forward_params<scalar_t>(in, out, n);
    at::parallel_for(0, p.rows, grain_rows(p.cols), [&](int64_t b, int64_t e) {
      kernels::cpu::softmax_n_forward(p, b, e);
    });
  });
  return detail::from_rows(out, d, x.scalar_type());
}

at::Tensor softmax_n_backward_cpu(const at::Tensor& grad_out, const at::Tensor& out, int64_t dim) {
  const int64_t d = detail::check_softmax_n_backward(grad_out, out, dim);
  if (out.dim() == 0) return softmax_n_backward_cpu(grad_out.reshape({1}), out.reshape({1}), 0).reshape({});
  const auto type = detail::compute_type(out);
  const auto g = detail::to_rows(grad_out, d, type);
  const auto y = detail::to_rows(out, d, type);
  auto gi = at::empty_like(y.data);
  AT_DISPATCH_FLOATING_TYPES(type, "softmax_n_backward_cpu", [&] {
    const auto p = detail::backward_params<scalar_t>(g, y, gi);
    at::parallel_for(0, p.rows, grain_rows(p.cols), [&](int64_t b, int64_t e) {
      kernels::cpu::softmax_n_backward(p, b, e);
    });
  });
  return detail::from_rows(gi, d, out.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(outeffhop, CPU, m) {
  m.impl("softmax_n", &softmax_n_cpu);
  m.impl("_softmax_n_backward", &softmax_n_backward_cpu);
}

}  // namespace outeffhop
