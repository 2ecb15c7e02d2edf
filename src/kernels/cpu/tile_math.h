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

// C[M x N] = (or +=) A[M x K] B[K x N]; all row-major with leading dimensions; N % kColumnPad == 0.
template <typename T>
inline void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
                 bool accumulate) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (!accumulate) std::fill(c, c + N, T(0));
    for (int64_t kk = 0; kk < K; ++kk) {
      const T a = A[i * lda + kk];
      const T* b = B + kk * ldb;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

template <typename T>
inline T row_max(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

// x_j <- exp(x_j - shift); returns the sum. exp(-inf) = 0 exactly; NaN stays NaN.
template <typename T>
inline T exp_shift_sum(T* x, int64_t n, T shift) {
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = std::exp(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

template <typename T>
inline void scale_row(T* x, int64_t n, T a) {
  for (int64_t j = 0; j < n; ++j) x[j] *= a;
}

#ifdef OUTEFFHOP_TILE_AVX2

// MR rows of C times 16 columns, accumulated in 2*MR registers over the whole K loop.
template <int MR>
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
      const __m256 a = _mm256_broadcast_ss(A + r * lda + kk);
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

template <>
inline void gemm<float>(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
                        float* C, int64_t ldc, bool accumulate) {
  constexpr int kRows = 6;  // 12 accumulators + 2 B vectors + 1 broadcast fit the 16 ymm registers
  for (int64_t j = 0; j < N; j += 16) {
    int64_t i = 0;
    for (; i + kRows <= M; i += kRows)
      micro_kernel_16<kRows>(K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc, accumulate);
    const float* a = A + i * lda;
    float* c = C + i * ldc + j;
    switch (M - i) {
      case 5: micro_kernel_16<5>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      case 4: micro_kernel_16<4>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      case 3: micro_kernel_16<3>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      case 2: micro_kernel_16<2>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      case 1: micro_kernel_16<1>(K, a, lda, B + j, ldb, c, ldc, accumulate); break;
      default: break;
    }
  }
}

inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
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
inline float row_max<float>(const float* x, int64_t n) {
  int64_t j = 0;
  float m = -std::numeric_limits<float>::infinity();
  if (n >= 8) {
    __m256 v = _mm256_loadu_ps(x);
    for (j = 8; j + 8 <= n; j += 8) v = _mm256_max_ps(v, _mm256_loadu_ps(x + j));
    m = horizontal_max(v);
  }
  for (; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

template <>
inline float exp_shift_sum<float>(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), s));
    _mm256_storeu_ps(x + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = horizontal_sum(acc);
  for (; j < n; ++j) {
    x[j] = std::exp(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

template <>
inline void scale_row<float>(float* x, int64_t n, float a) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), va));
  for (; j < n; ++j) x[j] *= a;
}

#endif  // OUTEFFHOP_TILE_AVX2

}  // namespace outeffhop::kernels::cpu::tile
