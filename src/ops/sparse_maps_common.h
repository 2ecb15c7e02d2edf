// What the sparse-map registrations share: argument checks and the per-row alpha layout.
#pragma once
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>

#include "../core/checks.h"

namespace outeffhop::detail {

// Checks x (floating, rank >= 1) and returns the wrapped dim.
inline int64_t check_sparse_map(const at::Tensor& x, int64_t dim, const char* op) {
  check_floating(x, op, "x");
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension, got a scalar");
  return wrap_dim(dim, x.dim(), op);
}

// The shape of one alpha per row: x's shape with `dim` set to 1.
inline std::vector<int64_t> alpha_shape(const at::Tensor& x, int64_t d) {
  auto shape = x.sizes().vec();
  shape[d] = 1;
  return shape;
}

// alpha: floating, finite, > 1, broadcastable to one value per row of x.
inline void check_alpha(const at::Tensor& alpha, const at::Tensor& x, int64_t d) {
  check_floating(alpha, "entmax_bisect", "alpha");
  const auto shape = alpha_shape(x, d);
  TORCH_CHECK(at::is_expandable_to(alpha.sizes(), shape), "entmax_bisect: alpha of shape ", alpha.sizes(),
              " must broadcast to x's shape with size 1 along dim, i.e. ", at::IntArrayRef(shape));
  TORCH_CHECK((alpha > 1).all().item<bool>() && alpha.isfinite().all().item<bool>(),
              "entmax_bisect: alpha must be finite and > 1 (alpha = 1 is softmax: use softmax_n with n = 0)");
}

// alpha broadcast to one value per row, laid out like the rows of x (dim last): [rows x 1], contiguous.
inline at::Tensor alpha_rows(const at::Tensor& alpha, const at::Tensor& x, int64_t d, at::ScalarType type) {
  check_alpha(alpha, x, d);
  return alpha.to(type).expand(alpha_shape(x, d)).movedim(d, -1).contiguous();
}

}  // namespace outeffhop::detail
