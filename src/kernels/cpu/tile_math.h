// Small dense building blocks of the fused attention kernel: a register-blocked tile GEMM and row-wise max/exp/sum.
// float uses AVX2/FMA when the translation unit is compiled for it; double (and builds without AVX2) use plain loops.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define OUTEFFHOP_TILE_AVX2 1
#endif

namespace outeffhop::kernels::cpu::tile {

// Column counts handed to gemm are padded to a multiple of this (the AVX2 micro-kernel is 16 floats wide).
constexpr int64_t kColumnPad = 16;
constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Where element (i, k) of the GEMM's A operand lives: row-major A[i * lda + k], or stored transposed A[k * lda + i]
// (a tile kept as its transpose is read in place instead of being copied).
enum class ALayout { kRowMajor, kTransposed };

template <ALayout layout>
inline int64_t a_index(int64_t i, int64_t k, int64_t lda) {
  return layout == ALayout::kRowMajor ? i * lda + k : k * lda + i;
}

// C[M x N] = (or +=) A[M x K] B[K x N]; B and C row-major with leading dimensions; N % kColumnPad == 0.
template <ALayout layout = ALayout::kRowMajor, typename T>
inline void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
                 bool accumulate) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (!accumulate) std::fill(c, c + N, T(0));
    for (int64_t kk = 0; kk < K; ++kk) {
      const T a = A[a_index<layout>(i, kk, lda)];
      const T* b = B + kk * ldb;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

template <typename T>
inline void scale_row(T* x, int64_t n, T a) {
  for (int64_t j = 0; j < n; ++j) x[j] *= a;
}

// Column-wise reductions over a rows x cols tile (leading dim ld): the layout of a transposed score tile, where a
// column is one query. cols % 8 == 0.
template <typename T>
inline void column_max(const T* x, int64_t rows, int64_t ld, int64_t cols, T* max) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) max[c] = std::max(max[c], x[r * ld + c]);
}

// x[r][c] <- exp(x[r][c] - shift[c]); sum[c] += x[r][c]. exp(-inf) = 0 exactly; NaN stays NaN.
template <typename T>
inline void exp_shift_columns(T* x, int64_t rows, int64_t ld, int64_t cols, const T* shift, T* sum) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) sum[c] += (x[r * ld + c] = std::exp(x[r * ld + c] - shift[c]));
}

// x[r][c] <- exp(x[r][c] - shift[r]) over a rows x cols tile (a row is one query of a score tile). cols % 8 == 0.
template <typename T>
inline void exp_shift_rows(T* x, int64_t rows, int64_t ld, int64_t cols, const T* shift) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) x[r * ld + c] = std::exp(x[r * ld + c] - shift[r]);
}

#ifdef OUTEFFHOP_TILE_AVX2

// MR rows of C times 16 columns, accumulated in 2*MR registers over the whole K loop.
template <ALayout layout, int MR>
inline void micro_kernel_16(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                            bool accumulate) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    c0[r] = accumulate ? _mm256_loadu_ps(C + r * ldc) : _mm256_setzero_ps();
    c1[r] = accumulate ? _mm256_loadu_ps(C + r * ldc + 8) : _mm256_setzero_ps();
  }
  for (int64_t kk = 0; kk < K; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(B + kk * ldb);
    const __m256 b1 = _mm256_loadu_ps(B + kk * ldb + 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + a_index<layout>(r, kk, lda));
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_ps(C + r * ldc, c0[r]);
    _mm256_storeu_ps(C + r * ldc + 8, c1[r]);
  }
}

template <ALayout layout>
inline void gemm_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                      float* C, int64_t ldc, bool accumulate) {
  constexpr int kRows = 6;  // 12 accumulators + 2 B vectors + 1 broadcast fit the 16 ymm registers
  for (int64_t j = 0; j < N; j += 16) {
    int64_t i = 0;
    for (; i + kRows <= M; i += kRows)
      micro_kernel_16<layout, kRows>(K, A + a_index<layout>(i, 0, lda), lda, B + j, ldb, C + i * ldc + j, ldc,
                                     accumulate);
    const float* a = A + a_index<layout>(i, 0, lda);
    float* c = C + i * ldc + j;
    switch (M - i) {
      case 5: micro_kernel_16<layout, 5>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      case 4: micro_kernel_16<layout, 4>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      case 3: micro_kernel_16<layout, 3>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      case 2: micro_kernel_16<layout, 2>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      case 1: micro_kernel_16<layout, 1>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      default: break;
    }
  }
}

template <>
inline void gemm<ALayout::kRowMajor, float>(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                            const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  gemm_avx2<ALayout::kRowMajor>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

template <>
inline void gemm<ALayout::kTransposed, float>(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                                              const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  gemm_avx2<ALayout::kTransposed>(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

// exp on 8 lanes: Cody-Waite range reduction and the Cephes degree-6 polynomial (relative error ~1e-7).
// Below -87.33 (where expf leaves the normal range) the result is 0, so exp(-inf) = 0; NaN propagates because the
// clamps take x as their second operand.
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3365447504f);
  const __m256 xc = _mm256_max_ps(lo, _mm256_min_ps(_mm256_set1_ps(88.0f), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504089f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
}

template <>
inline void exp_shift_columns<float>(float* x, int64_t rows, int64_t ld, int64_t cols, const float* shift,
                                     float* sum) {
  for (int64_t c = 0; c < cols; c += 8) {
    const __m256 sh = _mm256_loadu_ps(shift + c);
    __m256 acc = _mm256_loadu_ps(sum + c);
    for (int64_t r = 0; r < rows; ++r) {
      float* p = x + r * ld + c;
      const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), sh));
      _mm256_storeu_ps(p, e);
      acc = _mm256_add_ps(acc, e);
    }
    _mm256_storeu_ps(sum + c, acc);
  }
}

template <>
inline void exp_shift_rows<float>(float* x, int64_t rows, int64_t ld, int64_t cols, const float* shift) {
  for (int64_t r = 0; r < rows; ++r) {
    const __m256 sh = _mm256_set1_ps(shift[r]);
    for (int64_t c = 0; c < cols; c += 8) {
      float* p = x + r * ld + c;
      _mm256_storeu_ps(p, exp8(_mm256_sub_ps(_mm256_loadu_ps(p), sh)));
    }
  }
}

#endif  // OUTEFFHOP_TILE_AVX2

}  // namespace outeffhop::kernels::cpu::tile
