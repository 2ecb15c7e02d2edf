// Row-wise softmax_n on contiguous [rows x cols] buffers, CPU: exp(z_i) / (n + sum_j exp(z_j)).
// Raw pointers and a plain params struct: no ATen types here.
#pragma once
#include <cstdint>

#include "../softmax_n_params.h"

namespace outeffhop::kernels::cpu {

// Processes rows [row_begin, row_end); callers parallelise over row ranges.
template <typename T>
void softmax_n_forward(const SoftmaxNParams<T>& p, int64_t row_begin, int64_t row_end);

template <typename T>
void softmax_n_backward(const SoftmaxNBackwardParams<T>& p, int64_t row_begin, int64_t row_end);

}  // namespace outeffhop::kernels::cpu
