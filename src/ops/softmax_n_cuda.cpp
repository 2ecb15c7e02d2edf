// CUDA implementation of softmax_n and its backward: moves `dim` last and launches the row kernel on the current
// stream. Compiled wherever the CUDA toolkit exists; runs only on GPU machines.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>

#include "../kernels/cuda/softmax_n_kernel.cuh"
#include "softmax_n_common.h"

namespace outeffhop {
namespace {

void check_grid(int64_t rows, const char* op) {
  TORCH_CHECK(rows <= std::numeric_limits<int32_t>::max(), op, ": ", rows, " rows exceed one CUDA grid (2^31 - 1)");
}

at::Tensor softmax_n_cuda(const at::Tensor& x, double n, int64_t dim) {
  const int64_t d = detail::check_softmax_n(x, n, dim);
  if (x.dim() == 0) return softmax_n_cuda(x.reshape({1}), n, 0).reshape({});
  const c10::cuda::CUDAGuard guard(x.device());
  const auto in = detail::to_rows(x, d, detail::compute_type(x));
  check_grid(in.rows, "softmax_n");
  auto out = at::empty_like(in.data);
  AT_DISPATCH_FLOATING_TYPES(in.data.scalar_type(), "softmax_n_cuda", [&] {
    kernels::cuda::softmax_n_forward(detail::forward_params<scalar_t>(in, out, n), at::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return detail::from_rows(out, d, x.scalar_type());
}

at::Tensor softmax_n_backward_cuda(const at::Tensor& grad_out, const at::Tensor& out, int64_t dim) {
  const int64_t d = detail::check_softmax_n_backward(grad_out, out, dim);
  if (out.dim() == 0) return softmax_n_backward_cuda(grad_out.reshape({1}), out.reshape({1}), 0).reshape({});
  const c10::cuda::CUDAGuard guard(out.device());
  const auto type = detail::compute_type(out);
  const auto g = detail::to_rows(grad_out, d, type);
  const auto y = detail::to_rows(out, d, type);
  check_grid(y.rows, "_softmax_n_backward");
  auto gi = at::empty_like(y.data);
  AT_DISPATCH_FLOATING_TYPES(type, "softmax_n_backward_cuda", [&] {
    kernels::cuda::softmax_n_backward(detail::backward_params<scalar_t>(g, y, gi), at::cuda::getCurrentCUDAStream());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return detail::from_rows(gi, d, out.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(outeffhop, CUDA, m) {
  m.impl("softmax_n", &softmax_n_cuda);
  m.impl("_softmax_n_backward", &softmax_n_backward_cuda);
}

}  // namespace outeffhop
