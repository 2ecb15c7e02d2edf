// Row-wise softmax_n on contiguous [rows x cols] buffers, CUDA: one thread block per row.
// Same semantics as the CPU kernel (shift m = max(log n, max z); -inf rows -> 0; +inf logits share the mass;
// NaN poisons its row). Raw pointers and the shared params struct: no ATen types here.
#pragma once
#include <cuda_runtime.h>

#include "../softmax_n_params.h"

namespace outeffhop::kernels::cuda {

template <typename T>
void softmax_n_forward(const SoftmaxNParams<T>& p, cudaStream_t stream);

template <typename T>
void softmax_n_backward(const SoftmaxNBackwardParams<T>& p, cudaStream_t stream);

}  // namespace outeffhop::kernels::cuda
