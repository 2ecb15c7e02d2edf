// softmax_n forward and backward on rows, side by side (see softmax_n_kernel.h).
#include "softmax_n_kernel.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace outeffhop::kernels::cpu {
namespace {
template <typename T>
double is_pos_inf(T v) { return std::isinf(v) && v > 0 ? 1.0 : 0.0; }
}  // namespace

// Stable form: m = max(log n, max_j z_j), p_i = exp(z_i - m) / (n exp(-m) + sum_j exp(z_j - m)).
// Including log n in the max keeps n exp(-m) <= 1, so rows of -inf (fully masked) give p = 0 instead of 0/0,
// and rows whose logits are all far below zero do not underflow the denominator to 0.
// NaN anywhere in a row propagates to the whole row (defined: garbage in, NaN out, never a crash).
template <typename T>
void softmax_n_forward(const SoftmaxNParams<T>& p, int64_t row_begin, int64_t row_end) {
  using Acc = double;  // rows are short compared with the cost of exp; double accumulation is cheap insurance
  const Acc log_n = p.n > 0 ? std::log(p.n) : -std::numeric_limits<Acc>::infinity();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const T* z = p.in + r * p.cols;
    T* out = p.out + r * p.cols;
    Acc m = log_n;
    bool has_nan = false;
    for (int64_t j = 0; j < p.cols; ++j) {
      const Acc zj = static_cast<Acc>(z[j]);
      has_nan |= std::isnan(zj);
      m = std::max(m, zj);
    }
    if (has_nan) {
      std::fill(out, out + p.cols, std::numeric_limits<T>::quiet_NaN());
      continue;
    }
    if (std::isinf(m) && m < 0) m = 0;  // n = 0 and every logit -inf: define the row as zeros
    Acc denom = p.n > 0 ? std::exp(log_n - m) : 0;
    for (int64_t j = 0; j < p.cols; ++j) {
      const Acc e = std::exp(static_cast<Acc>(z[j]) - m);
      out[j] = static_cast<T>(e);  // stash exp; normalised below
      denom += e;
    }
    if (std::isinf(m)) {  // +inf logits take all the mass and share it equally (the limit of large finite logits)
      Acc count = 0;
      for (int64_t j = 0; j < p.cols; ++j) count += is_pos_inf(z[j]);
      for (int64_t j = 0; j < p.cols; ++j) out[j] = static_cast<T>(is_pos_inf(z[j]) / count);
    } else {
      const Acc inv = denom > 0 ? Acc(1) / denom : Acc(0);
      for (int64_t j = 0; j < p.cols; ++j) out[j] = static_cast<T>(static_cast<Acc>(out[j]) * inv);
    }
  }
}

// dL/dz_i = p_i (g_i - sum_j p_j g_j): the softmax Jacobian holds for softmax_n too (the row mass is simply < 1).
template <typename T>
void softmax_n_backward(const SoftmaxNBackwardParams<T>& p, int64_t row_begin, int64_t row_end) {
  using Acc = double;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const T* g = p.grad_out + r * p.cols;
    const T* y = p.out + r * p.cols;
    T* gi = p.grad_in + r * p.cols;
    Acc dot = 0;
    for (int64_t j = 0; j < p.cols; ++j) dot += static_cast<Acc>(y[j]) * static_cast<Acc>(g[j]);
    for (int64_t j = 0; j < p.cols; ++j) {
      gi[j] = static_cast<T>(static_cast<Acc>(y[j]) * (static_cast<Acc>(g[j]) - dot));
    }
  }
}

template void softmax_n_forward<float>(const SoftmaxNParams<float>&, int64_t, int64_t);
template void softmax_n_forward<double>(const SoftmaxNParams<double>&, int64_t, int64_t);
template void softmax_n_backward<float>(const SoftmaxNBackwardParams<float>&, int64_t, int64_t);
template void softmax_n_backward<double>(const SoftmaxNBackwardParams<double>&, int64_t, int64_t);

}  // namespace outeffhop::kernels::cpu
