// Argument checks shared by the ops: each failure names the argument and what was expected.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <cmath>
#include <string_view>

namespace outeffhop::detail {

inline void check_floating(const at::Tensor& t, std::string_view op, std::string_view name) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name,
              " must be a floating-point tensor (float32, float64, float16 or bfloat16), got ", t.scalar_type());
}

inline void check_rank(const at::Tensor& t, int64_t rank, std::string_view op, std::string_view name,
                       std::string_view layout) {
  TORCH_CHECK(t.dim() == rank, op, ": ", name, " must be ", rank, "-D (", layout, "), got shape ", t.sizes());
}

inline void check_n(double n, std::string_view op) {
  TORCH_CHECK(std::isfinite(n) && n >= 0, op, ": n (the no-op mass) must be finite and >= 0, got ", n);
}

inline void check_positive(double v, std::string_view op, std::string_view name) {
  TORCH_CHECK(std::isfinite(v) && v > 0, op, ": ", name, " must be finite and > 0, got ", v);
}

inline int64_t wrap_dim(int64_t dim, int64_t rank, std::string_view op) {
  const int64_t r = rank == 0 ? 1 : rank;
  TORCH_CHECK(dim >= -r && dim < r, op, ": dim ", dim, " is out of range for a tensor of rank ", rank);
  return dim < 0 ? dim + r : dim;
}

}  // namespace outeffhop::detail
