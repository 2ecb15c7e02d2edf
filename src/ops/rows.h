// Moves a tensor's reduction dim last and makes it a contiguous [rows x cols] buffer in the compute dtype (float32
// for float16/bfloat16, else the input's), and back: the layout every row-wise kernel works on.
#pragma once
#include <ATen/ATen.h>

namespace outeffhop::detail {

inline at::ScalarType compute_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

struct Rows {
  at::Tensor data;  // contiguous, `dim` last, compute dtype
  int64_t rows = 0;
  int64_t cols = 0;
};

// dim must already be wrapped; t must have rank >= 1.
inline Rows to_rows(const at::Tensor& t, int64_t dim, at::ScalarType type) {
  Rows r;
  r.data = t.movedim(dim, -1).to(type).contiguous();
  r.cols = r.data.size(-1);
  r.rows = r.cols == 0 ? 0 : r.data.numel() / r.cols;
  return r;
}

inline at::Tensor from_rows(const at::Tensor& rows, int64_t dim, at::ScalarType type) {
  return rows.movedim(-1, dim).to(type).contiguous();
}

}  // namespace outeffhop::detail
