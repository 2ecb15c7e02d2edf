// Sparse probability maps on contiguous [rows x cols] buffers, CPU: sparsemax, 1.5-entmax, alpha-entmax (bisection).
// Raw pointers and a plain params struct: no ATen types here. Callers parallelise over row ranges.
#pragma once
#include <cstdint>

#include "../sparse_maps_params.h"

namespace outeffhop::kernels::cpu {

template <typename T>
void sparsemax_forward(const SparseMapParams<T>& p, int64_t row_begin, int64_t row_end);
template <typename T>
void sparsemax_backward(const SparseMapBackwardParams<T>& p, int64_t row_begin, int64_t row_end);

template <typename T>
void entmax15_forward(const SparseMapParams<T>& p, int64_t row_begin, int64_t row_end);
template <typename T>
void entmax15_backward(const SparseMapBackwardParams<T>& p, int64_t row_begin, int64_t row_end);

template <typename T>
void entmax_bisect_forward(const SparseMapParams<T>& p, int64_t row_begin, int64_t row_end);
template <typename T>
void entmax_bisect_backward(const SparseMapBackwardParams<T>& p, int64_t row_begin, int64_t row_end);

}  // namespace outeffhop::kernels::cpu
