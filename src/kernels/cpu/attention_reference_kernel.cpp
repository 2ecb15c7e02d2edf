// Scalar reference kernels for fused attention: one query row at a time, every logit kept, double accumulation.
// Slow and plain on purpose: the tiled kernel is tested against it, and it runs where the tiled one cannot.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_kernel.h"

namespace outeffhop::kernels::cpu {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Logits of query i against every key of head (b, h), with the mask; hidden keys get -inf.
template <typename T>
void row_logits(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i, std::vector<double>& s) {
  const T* q = p.q + p.q_stride.at(b, h, i);
  const int64_t visible = p.visible_keys(i);
  for (int64_t j = 0; j < p.Lk; ++j) {
    const T* k = p.k + p.k_stride.at(b, h, j);
    double dot = 0;
    for (int64_t d = 0; d < p.D; ++d) dot += static_cast<double>(q[d]) * static_cast<double>(k[d]);
    s[j] = dot * p.scale;
    const int64_t m = p.mask_offset(b, h, i) + j * p.mask_stride[3];
    if (p.mask_add) s[j] += static_cast<double>(p.mask_add[m]);
    if ((p.mask_keep && !p.mask_keep[m]) || j >= visible) s[j] = kNegInf;
  }
}

// Exact probabilities (in place of the logits) and the log of the normaliser including the no-op key.
template <typename T>
double row_probabilities(const AttentionParams<T>& p, int64_t h, std::vector<double>& s) {
  double m = p.no_op_logit(h);
  for (double x : s) m = std::max(m, x);
  if (m == kNegInf) {
    std::fill(s.begin(), s.end(), 0.0);
    return kNegInf;
  }
  double sum = std::exp(p.no_op_logit(h) - m);
  for (double& x : s) sum += (x = std::exp(x - m));
  for (double& x : s) x /= sum;
  return m + std::log(sum);
}

template <typename T>
double clipped(const AttentionParams<T>& p, double prob, bool hidden) {
  return hidden ? 0.0 : std::clamp((p.eta - p.gamma) * prob + p.gamma, 0.0, 1.0);
}

}  // namespace

template <typename T>
void attention_forward_reference(const AttentionParams<T>& p, int64_t bh_begin, int64_t bh_end) {
  std::vector<double> s(p.Lk), acc(p.Dv);
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const int64_t b = bh / p.H, h = bh % p.H;
    for (int64_t i = 0; i < p.Lq; ++i) {
      row_logits(p, b, h, i, s);
      std::vector<bool> hidden(p.Lk);
      for (int64_t j = 0; j < p.Lk; ++j) hidden[j] = s[j] == kNegInf;
      p.lse[bh * p.Lq + i] = static_cast<T>(row_probabilities(p, h, s));
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < p.Lk; ++j) {
        const double w = p.clipped ? clipped(p, s[j], hidden[j]) : s[j];
        const T* v = p.v + p.v_stride.at(b, h, j);
        for (int64_t c = 0; c < p.Dv; ++c) acc[c] += w * static_cast<double>(v[c]);
      }
      for (int64_t c = 0; c < p.Dv; ++c) p.out[(bh * p.Lq + i) * p.Dv + c] = static_cast<T>(acc[c]);
    }
  }
}

template <typename T>
void attention_backward_reference(const AttentionBackwardParams<T>& g, int64_t bh_begin, int64_t bh_end) {
  const auto& p = g.fwd;
  std::vector<double> s(p.Lk), dp(p.Lk), dq(p.D), dk, dv;
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const int64_t b = bh / p.H, h = bh % p.H;
    dk.assign(p.Lk * p.D, 0.0);
    dv.assign(p.Lk * p.Dv, 0.0);
    for (int64_t i = 0; i < p.Lq; ++i) {
      const T* dout = g.grad_out + (bh * p.Lq + i) * p.Dv;
      const T* q = p.q + p.q_stride.at(b, h, i);
      row_logits(p, b, h, i, s);
      std::vector<bool> hidden(p.Lk);
      for (int64_t j = 0; j < p.Lk; ++j) hidden[j] = s[j] == kNegInf;
      row_probabilities(p, h, s);
      // dp_j = dL/d(exact p_j); the clip passes gradient only where it does not saturate.
      double row_dot = 0;
      for (int64_t j = 0; j < p.Lk; ++j) {
        const T* v = p.v + p.v_stride.at(b, h, j);
        double dot = 0;
        for (int64_t c = 0; c < p.Dv; ++c) dot += static_cast<double>(dout[c]) * static_cast<double>(v[c]);
        if (p.clipped) {
          const double stretched = (p.eta - p.gamma) * s[j] + p.gamma;
          dot = (!hidden[j] && stretched > 0 && stretched < 1) ? (p.eta - p.gamma) * dot : 0.0;
        }
        dp[j] = dot;
        row_dot += s[j] * dot;
        const double used = p.clipped ? clipped(p, s[j], hidden[j]) : s[j];
        for (int64_t c = 0; c < p.Dv; ++c) dv[j * p.Dv + c] += used * static_cast<double>(dout[c]);
      }
      if (g.grad_lse) row_dot -= static_cast<double>(g.grad_lse[bh * p.Lq + i]);
      g.row_dot[bh * p.Lq + i] = static_cast<T>(row_dot);
      std::fill(dq.begin(), dq.end(), 0.0);
      for (int64_t j = 0; j < p.Lk; ++j) {
        const double ds = s[j] * (dp[j] - row_dot) * p.scale;
        const T* k = p.k + p.k_stride.at(b, h, j);
        for (int64_t d = 0; d < p.D; ++d) {
          dq[d] += ds * static_cast<double>(k[d]);
          dk[j * p.D + d] += ds * static_cast<double>(q[d]);
        }
      }
      for (int64_t d = 0; d < p.D; ++d) g.grad_q[(bh * p.Lq + i) * p.D + d] = static_cast<T>(dq[d]);
    }
    for (int64_t j = 0; j < p.Lk * p.D; ++j) g.grad_k[bh * p.Lk * p.D + j] = static_cast<T>(dk[j]);
    for (int64_t j = 0; j < p.Lk * p.Dv; ++j) g.grad_v[bh * p.Lk * p.Dv + j] = static_cast<T>(dv[j]);
  }
}

bool tiled_attention_supported() {
#if defined(OUTEFFHOP_ATTENTION_AVX2)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return true;
#endif
}

template void attention_forward_reference<float>(const AttentionParams<float>&, int64_t, int64_t);
template void attention_forward_reference<double>(const AttentionParams<double>&, int64_t, int64_t);
template void attention_backward_reference<float>(const AttentionBackwardParams<float>&, int64_t, int64_t);
template void attention_backward_reference<double>(const AttentionBackwardParams<double>&, int64_t, int64_t);

}  // namespace outeffhop::kernels::cpu
