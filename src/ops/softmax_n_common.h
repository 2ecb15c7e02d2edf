// What the CPU and CUDA softmax_n wrappers share: argument checks and filling the kernels' params structs from the
// row layout.
#pragma once
#include <ATen/ATen.h>

#include "../core/checks.h"
#include "../kernels/softmax_n_params.h"
#include "rows.h"

namespace outeffhop::detail {

// Checks softmax_n's arguments; returns the wrapped dim.
inline int64_t check_softmax_n(const at::Tensor& x, double n, int64_t dim) {
  check_floating(x, "softmax_n", "x");
  check_n(n, "softmax_n");
  return wrap_dim(dim, x.dim(), "softmax_n");
}

inline int64_t check_softmax_n_backward(const at::Tensor& grad_out, const at::Tensor& out, int64_t dim) {
  TORCH_CHECK(grad_out.sizes() == out.sizes(), "_softmax_n_backward: grad_out shape ", grad_out.sizes(),
              " differs from out shape ", out.sizes());
  return wrap_dim(dim, out.dim(), "_softmax_n_backward");
}

template <typename T>
kernels::SoftmaxNParams<T> forward_params(const Rows& in, at::Tensor& out, double n) {
  kernels::SoftmaxNParams<T> p;
  p.in = in.data.const_data_ptr<T>();
  p.out = out.mutable_data_ptr<T>();
  p.rows = in.rows;
  p.cols = in.cols;
  p.n = n;
  return p;
}

template <typename T>
kernels::SoftmaxNBackwardParams<T> backward_params(const Rows& grad_out, const Rows& out, at::Tensor& grad_in) {
  kernels::SoftmaxNBackwardParams<T> p;
  p.grad_out = grad_out.data.const_data_ptr<T>();
  p.out = out.data.const_data_ptr<T>();
  p.grad_in = grad_in.mutable_data_ptr<T>();
  p.rows = out.rows;
  p.cols = out.cols;
  return p;
}

}  // namespace outeffhop::detail
