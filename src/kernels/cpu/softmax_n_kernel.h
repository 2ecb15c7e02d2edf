// Row-wise softmax_n on contiguous [rows x cols] buffers: exp(z_i) / (n + sum_j exp(z_j)).
// Plain params struct and raw pointers: no ATen types here, so the same math can be read, tested and ported alone.
#pragma once
#include <cstdint>

namespace outeffhop::kernels::cpu {

template <typename T>
struct SoftmaxNParams {
  const T* in = nullptr;   // [rows x cols] logits z
  T* out = nullptr;        // [rows x cols] probabilities p
  int64_t rows = 0;
  int64_t cols = 0;
  double n = 1.0;          // mass of the virtual no-op key (logit log n, value 0); n = 0 is ordinary softmax
};

template <typename T>
struct SoftmaxNBackwardParams {
  const T* grad_out = nullptr;  // [rows x cols] dL/dp
  const T* out = nullptr;       // [rows x cols] p from the forward pass
  T* grad_in = nullptr;         // [rows x cols] dL/dz = p * (g - sum_j p_j g_j)
  int64_t rows = 0;
  int64_t cols = 0;
};

// Processes rows [row_begin, row_end); callers parallelise over row ranges.
template <typename T>
void softmax_n_forward(const SoftmaxNParams<T>& p, int64_t row_begin, int64_t row_end);

template <typename T>
void softmax_n_backward(const SoftmaxNBackwardParams<T>& p, int64_t row_begin, int64_t row_end);

}  // namespace outeffhop::kernels::cpu
