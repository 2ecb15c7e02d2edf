// Parameters of the row-wise sparse probability maps (sparsemax, entmax15, alpha-entmax by bisection): contiguous
// [rows x cols] buffers, no ATen types.
#pragma once
#include <cstdint>

namespace outeffhop::kernels {

template <typename T>
struct SparseMapParams {
  const T* in = nullptr;     // [rows x cols] scores z
  T* out = nullptr;          // [rows x cols] probabilities p (rows sum to 1; fully -inf rows give zeros)
  int64_t rows = 0;
  int64_t cols = 0;
  const T* alpha = nullptr;  // [rows] alpha > 1 (entmax_bisect only)
  int64_t n_iter = 50;       // bisection steps (entmax_bisect only)
};

template <typename T>
struct SparseMapBackwardParams {
  const T* grad_out = nullptr;  // [rows x cols] dL/dp
  const T* out = nullptr;       // [rows x cols] p from the forward pass
  T* grad_in = nullptr;         // [rows x cols] dL/dz
  int64_t rows = 0;
  int64_t cols = 0;
  // entmax_bisect only: the forward's scores and alphas, and dL/dalpha per row (may be null).
  const T* in = nullptr;
  const T* alpha = nullptr;
  T* grad_alpha = nullptr;
};

}  // namespace outeffhop::kernels
