// Parameters of the fused softmax-family attention kernels: raw pointers, sizes and element strides; no ATen types.
#pragma once
#include <cmath>
#include <cstdint>

namespace outeffhop::kernels {

// Strides in elements of a B x H x L x D tensor whose last dimension is contiguous.
struct RowStrides {
  int64_t b = 0, h = 0, l = 0;
  int64_t at(int64_t bi, int64_t hi, int64_t li) const { return bi * b + hi * h + li * l; }
};

template <typename T>
struct AttentionParams {
  const T* q = nullptr;  // B x H x Lq x D
  const T* k = nullptr;  // B x H x Lk x D
  const T* v = nullptr;  // B x H x Lk x Dv
  RowStrides q_stride, k_stride, v_stride;
  int64_t B = 0, H = 0, Lq = 0, Lk = 0, D = 0, Dv = 0;

  // Optional mask broadcast to B x H x Lq x Lk (a stride of 0 repeats a dimension): additive logits or keep flags.
  const T* mask_add = nullptr;
  const bool* mask_keep = nullptr;
  int64_t mask_stride[4] = {0, 0, 0, 0};

  const T* sink = nullptr;  // H per-head no-op logits; when null the no-op logit is log_n for every head
  double log_n = 0.0;       // log n; -inf for n = 0 (vanilla softmax)
  bool causal = false;      // bottom-right aligned: query i sees keys j <= i + (Lk - Lq)
  double scale = 1.0;

  // Clipped softmax_n: p = clip((eta - gamma) * softmax_n + gamma, 0, 1) on kept keys (masked keys give 0).
  bool clipped = false;
  double gamma = 0.0, eta = 1.0;

  T* out = nullptr;  // B x H x Lq x Dv, contiguous
  T* lse = nullptr;  // B x H x Lq, contiguous: log(n + sum_j exp(s_j)) with the sink; -inf when that sum is empty

  double no_op_logit(int64_t h) const { return sink ? static_cast<double>(sink[h]) : log_n; }
  // Keys [0, visible_keys(i)) are not hidden by the causal rule for query i.
  int64_t visible_keys(int64_t i) const {
    if (!causal) return Lk;
    const int64_t last = i + (Lk - Lq);
    return last < 0 ? 0 : (last + 1 < Lk ? last + 1 : Lk);
  }
  bool has_mask() const { return mask_add != nullptr || mask_keep != nullptr; }
  int64_t mask_offset(int64_t bi, int64_t hi, int64_t i) const {
    return bi * mask_stride[0] + hi * mask_stride[1] + i * mask_stride[2];
  }
};

template <typename T>
struct AttentionBackwardParams {
  AttentionParams<T> fwd;     // the forward's inputs, out and lse (out and lse read-only here)
  const T* grad_out = nullptr;  // B x H x Lq x Dv, contiguous
  const T* grad_lse = nullptr;  // optional B x H x Lq: dL/dlse (d lse / d s_j = p_j folds into row_dot)
  // Output, per query row (B x H x Lq, contiguous): sum_j p_j dL/dp_j - dL/dlse (rowsum(dO * O) - dL/dlse for
  // softmax_n), so that dL/ds_j = p_j (dL/dp_j - row_dot) and dL/dsink_h = -sum_{b,i} exp(s_h - lse) * row_dot.
  T* row_dot = nullptr;
  T* grad_q = nullptr;  // B x H x Lq x D, contiguous
  T* grad_k = nullptr;  // B x H x Lk x D, contiguous
  T* grad_v = nullptr;  // B x H x Lk x Dv, contiguous
};

}  // namespace outeffhop::kernels
