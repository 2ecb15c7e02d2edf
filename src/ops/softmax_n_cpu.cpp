// CPU implementation of softmax_n and its backward: moves `dim` last, runs the row kernel in parallel over rows.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../core/checks.h"
#include "../kernels/cpu/softmax_n_kernel.h"

namespace outeffhop {
namespace {

namespace kcpu = kernels::cpu;

// float16/bfloat16 are computed in float32 and rounded once at the end.
at::ScalarType compute_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

int64_t grain_rows(int64_t cols) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)); }

at::Tensor softmax_n_cpu(const at::Tensor& x, double n, int64_t dim) {
  detail::check_floating(x, "softmax_n", "x");
  detail::check_n(n, "softmax_n");
  const int64_t d = detail::wrap_dim(dim, x.dim(), "softmax_n");
  if (x.dim() == 0) return softmax_n_cpu(x.reshape({1}), n, 0).reshape({});
  const auto rows_view = x.movedim(d, -1).to(compute_type(x)).contiguous();
  auto out = at::empty_like(rows_view);
  const int64_t cols = rows_view.size(-1);
  const int64_t rows = cols == 0 ? 0 : rows_view.numel() / cols;
  AT_DISPATCH_FLOATING_TYPES(rows_view.scalar_type(), "softmax_n_cpu", [&] {
    kcpu::SoftmaxNParams<scalar_t> p;
    p.in = rows_view.const_data_ptr<scalar_t>();
    p.out = out.mutable_data_ptr<scalar_t>();
    p.rows = rows;
    p.cols = cols;
    p.n = n;
    at::parallel_for(0, rows, grain_rows(cols), [&](int64_t b, int64_t e) { kcpu::softmax_n_forward(p, b, e); });
  });
  return out.movedim(-1, d).to(x.scalar_type()).contiguous();
}

at::Tensor softmax_n_backward_cpu(const at::Tensor& grad_out, const at::Tensor& out, int64_t dim) {
  TORCH_CHECK(grad_out.sizes() == out.sizes(), "_softmax_n_backward: grad_out shape ", grad_out.sizes(),
              " differs from out shape ", out.sizes());
  const int64_t d = detail::wrap_dim(dim, out.dim(), "_softmax_n_backward");
  if (out.dim() == 0) return softmax_n_backward_cpu(grad_out.reshape({1}), out.reshape({1}), 0).reshape({});
  const auto type = compute_type(out);
  const auto g = grad_out.movedim(d, -1).to(type).contiguous();
  const auto y = out.movedim(d, -1).to(type).contiguous();
  auto gi = at::empty_like(y);
  const int64_t cols = y.size(-1);
  const int64_t rows = cols == 0 ? 0 : y.numel() / cols;
  AT_DISPATCH_FLOATING_TYPES(type, "softmax_n_backward_cpu", [&] {
    kcpu::SoftmaxNBackwardParams<scalar_t> p;
    p.grad_out = g.const_data_ptr<scalar_t>();
    p.out = y.const_data_ptr<scalar_t>();
    p.grad_in = gi.mutable_data_ptr<scalar_t>();
    p.rows = rows;
    p.cols = cols;
    at::parallel_for(0, rows, grain_rows(cols), [&](int64_t b, int64_t e) { kcpu::softmax_n_backward(p, b, e); });
  });
  return gi.movedim(-1, d).to(out.scalar_type()).contiguous();
}

}  // namespace

TORCH_LIBRARY_IMPL(outeffhop, CPU, m) {
  m.impl("softmax_n", &softmax_n_cpu);
  m.impl("_softmax_n_backward", &softmax_n_backward_cpu);
}

}  // namespace outeffhop
