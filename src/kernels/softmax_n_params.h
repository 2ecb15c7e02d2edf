// Parameters of the row-wise softmax_n kernels (CPU and CUDA): contiguous [rows x cols] buffers, no ATen types.
#pragma once
#include <cstdint>

namespace outeffhop::kernels {

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

}  // namespace outeffhop::kernels
