// Small dense building blocks of the fused attention kernel: a register-blocked tile GEMM, row-wise max/exp/sum and
// the clipped-softmax transform.
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

// sum[r] += sum_c x[r][c] y[r][c] over a rows x cols tile (any cols).
template <typename T>
inline void row_dots(const T* x, const T* y, int64_t rows, int64_t ld, int64_t cols, T* sum) {
  for (int64_t r = 0; r < rows; ++r) {
    T acc = 0;
    for (int64_t c = 0; c < cols; ++c) acc += x[r * ld + c] * y[r * ld + c];
    sum[r] += acc;
  }
}

// Clipped softmax (Bondarenko et al.) from a tile of logits and each query's log-normaliser `shift` (+inf for a
// query that sees no key): the exact probability exp(x - shift), the clipped one clip(a * prob + gamma, 0, 1) with 0
// where the logit is -inf (a hidden key, whatever gamma), and whether the clip passes gradient (kept, not saturated).
template <typename T>
inline bool clip_passes_gradient(T logit, T stretched) {
  return logit != -std::numeric_limits<T>::infinity() && stretched > T(0) && stretched < T(1);
}
template <typename T>
inline T clipped_probability(T logit, T stretched) {
  return logit == -std::numeric_limits<T>::infinity() ? T(0) : std::clamp(stretched, T(0), T(1));
}

// Forward, on a transposed tile (a column is one query): x <- the clipped probability. cols % 8 == 0.
template <typename T>
inline void clip_columns(T* x, int64_t rows, int64_t ld, int64_t cols, const T* shift, T a, T gamma) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      T& v = x[r * ld + c];
      v = clipped_probability(v, a * std::exp(v - shift[c]) + gamma);
    }
}

// Backward, on a row tile (a row is one query): x <- the exact probability, clipped <- the clipped one, dp <- a * dp
// where the clip passes gradient and 0 where it does not. cols % 8 == 0.
template <typename T>
inline void clip_rows(T* x, T* clipped, T* dp, int64_t rows, int64_t ld, int64_t cols, const T* shift, T a, T gamma) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * ld + c;
      const T logit = x[i];
      x[i] = std::exp(logit - shift[r]);
      const T stretched = a * x[i] + gamma;
      clipped[i] = clipped_probability(logit, stretched);
      dp[i] = clip_passes_gradient(logit, stretched) ? a * dp[i] : T(0);
    }
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

template <>
inline void row_dots<float>(const float* x, const float* y, int64_t rows, int64_t ld, int64_t cols, float* sum) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = x + r * ld;
    const float* b = y + r * ld;
    __m256 acc = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), acc);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    float total = 0;
    for (const float lane : lanes) total += lane;
    for (; c < cols; ++c) total += a[c] * b[c];
    sum[r] += total;
  }
}

// The clipped-softmax transform on 8 lanes: the exact probability, the clipped one and the mask of lanes where the
// clip passes gradient. NaN propagates to the clipped value (the clamps take it as their second operand) and passes
// no gradient.
struct Clip8 {
  __m256 prob, clipped, passes;
};
inline Clip8 clip8(__m256 logit, __m256 shift, __m256 a, __m256 gamma) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 prob = exp8(_mm256_sub_ps(logit, shift));
  const __m256 stretched = _mm256_fmadd_ps(a, prob, gamma);
  const __m256 hidden = _mm256_cmp_ps(logit, _mm256_set1_ps(-std::numeric_limits<float>::infinity()), _CMP_EQ_OQ);
  const __m256 inside =
      _mm256_and_ps(_mm256_cmp_ps(stretched, zero, _CMP_GT_OQ), _mm256_cmp_ps(stretched, one, _CMP_LT_OQ));
  return {prob, _mm256_andnot_ps(hidden, _mm256_max_ps(zero, _mm256_min_ps(one, stretched))),
          _mm256_andnot_ps(hidden, inside)};
}

template <>
inline void clip_columns<float>(float* x, int64_t rows, int64_t ld, int64_t cols, const float* shift, float a,
                                float gamma) {
  const __m256 va = _mm256_set1_ps(a), vg = _mm256_set1_ps(gamma);
  for (int64_t c = 0; c < cols; c += 8) {
    const __m256 sh = _mm256_loadu_ps(shift + c);
    for (int64_t r = 0; r < rows; ++r) {
      float* p = x + r * ld + c;
      _mm256_storeu_ps(p, clip8(_mm256_loadu_ps(p), sh, va, vg).clipped);
    }
  }
}

template <>
inline void clip_rows<float>(float* x, float* clipped, float* dp, int64_t rows, int64_t ld, int64_t cols,
                             const float* shift, float a, float gamma) {
  const __m256 va = _mm256_set1_ps(a), vg = _mm256_set1_ps(gamma);
  for (int64_t r = 0; r < rows; ++r) {
    const __m256 sh = _mm256_set1_ps(shift[r]);
    for (int64_t c = 0; c < cols; c += 8) {
      const int64_t i = r * ld + c;
      const Clip8 k = clip8(_mm256_loadu_ps(x + i), sh, va, vg);
      _mm256_storeu_ps(x + i, k.prob);
      _mm256_storeu_ps(clipped + i, k.clipped);
      _mm256_storeu_ps(dp + i, _mm256_and_ps(k.passes, _mm256_mul_ps(va, _mm256_loadu_ps(dp + i))));
    }
  }
}

#endif  // OUTEFFHOP_TILE_AVX2

}  // namespace outeffhop::kernels::cpu::tile
