// Tiled (flash-style) softmax-family attention on the CPU, forward and backward side by side.
// Compiled with AVX2/FMA where the compiler offers it (tile_math.h); no ATen types.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_kernel.h"
#include "tile_math.h"

namespace outeffhop::kernels::cpu {
namespace {

using tile::kColumnPad;
using tile::round_up;

constexpr int64_t kBq = kAttentionQueryBlock;
constexpr int64_t kBk = 128;  // keys per block: a 64 x 128 fp32 logits tile and the packed K/V blocks stay in L2

template <typename T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

// dst[r * ld + c] = factor * src[r * row_stride + c] for r < rows, c < cols (the source's last dim is contiguous).
template <typename T>
void pack_rows(const T* src, int64_t row_stride, int64_t rows, int64_t cols, T factor, T* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[r * ld + c] = factor * src[r * row_stride + c];
}

// dst[c * ld + r] = src[r * row_stride + c]: a block of rows stored transposed (columns of a GEMM's B operand).
template <typename T>
void pack_transposed(const T* src, int64_t row_stride, int64_t rows, int64_t cols, T* dst, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ld + r] = src[r * row_stride + c];
}

// Hides entries of a logits tile for queries [i0, i0 + nq) and keys [j0, j0 + nk) of head (b, h): adds the additive
// mask, sets -inf where a bool mask or the causal rule hides the key. Element (query r, key c) is at
// s[r * query_stride + c * key_stride], so row (S) and transposed (S^T) tiles share it.
template <typename T>
void mask_tile(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i0, int64_t nq, int64_t j0, int64_t nk, T* s,
               int64_t query_stride, int64_t key_stride) {
  for (int64_t r = 0; r < nq; ++r) {
    T* row = s + r * query_stride;
    const int64_t i = i0 + r;
    if (p.mask_add) {
      const T* m = p.mask_add + p.mask_offset(b, h, i) + j0 * p.mask_stride[3];
      for (int64_t c = 0; c < nk; ++c) row[c * key_stride] += m[c * p.mask_stride[3]];
    } else if (p.mask_keep) {
      const bool* m = p.mask_keep + p.mask_offset(b, h, i) + j0 * p.mask_stride[3];
      for (int64_t c = 0; c < nk; ++c)
        if (!m[c * p.mask_stride[3]]) row[c * key_stride] = kNegInf<T>;
    }
    for (int64_t c = std::max<int64_t>(0, p.visible_keys(i) - j0); c < nk; ++c) row[c * key_stride] = kNegInf<T>;
  }
}

// A log-normaliser as the shift of the probabilities exp(x - shift): a query that sees no key (n = 0, all hidden)
// has lse = -inf, and shifting by +inf makes all its probabilities 0.
template <typename T>
T probability_shift(T lse) {
  return lse == kNegInf<T> ? -kNegInf<T> : lse;
}

// Per-task buffers of the forward kernel. Scores are kept transposed (keys x queries): K's rows are the GEMM's A
// operand as they lie in memory, so K is never packed, and the softmax statistics are vectors over queries.
template <typename T>
struct ForwardWorkspace {
  int64_t ldv;
  bool pack_v;  // V rows are read in place unless their width is not a multiple of the GEMM's column block
  std::vector<T> qt, st, v, o, m, l, shift, alpha;
  explicit ForwardWorkspace(const AttentionParams<T>& p)
      : ldv(round_up(p.Dv, kColumnPad)),
        pack_v(p.Dv % kColumnPad != 0),
        qt(p.D * kBq, T(0)),
        st(kBk * kBq),
        v(pack_v ? kBk * ldv : 0, T(0)),
        o(kBq * ldv),
        m(kBq),
        l(kBq),
        shift(kBq),
        alpha(kBq) {}
};

// S^T for keys [j0, j0 + nk) against the block's (scaled, transposed) queries, masked: ws.st is nk x kBq, of which
// the first `cols` (nq rounded up to the GEMM's column block) are computed.
template <typename T>
void forward_logits(const AttentionParams<T>& p, ForwardWorkspace<T>& ws, int64_t b, int64_t h, int64_t i0,
                    int64_t nq, int64_t cols, int64_t j0, int64_t nk) {
  tile::gemm(nk, cols, p.D, p.k + p.k_stride.at(b, h, j0), p.k_stride.l, ws.qt.data(), kBq, ws.st.data(), kBq, false);
  mask_tile(p, b, h, i0, nq, j0, nk, ws.st.data(), 1, kBq);
}

// o += P V for the block of nk values, P read from the transposed tile.
template <typename T>
void accumulate_values(const AttentionParams<T>& p, ForwardWorkspace<T>& ws, int64_t b, int64_t h, int64_t nq,
                       int64_t j0, int64_t nk) {
  const T* v = p.v + p.v_stride.at(b, h, j0);
  int64_t ldb = p.v_stride.l;
  if (ws.pack_v) {
    pack_rows(v, p.v_stride.l, nk, p.Dv, T(1), ws.v.data(), ws.ldv);
    v = ws.v.data(), ldb = ws.ldv;
  }
  tile::gemm<tile::ALayout::kTransposed>(nq, ws.ldv, nk, ws.st.data(), kBq, v, ldb, ws.o.data(), ws.ldv, true);
}

// One query block: the online-softmax recurrence over key blocks, started at the no-op key (logit log n, value 0).
// Clipped softmax needs the final normaliser before any probability: a first pass finds it, a second accumulates.
// A short block (a short sequence: STanHop-Net's rows are 5-28 long) computes only its own columns, rounded up to the
// GEMM's column block: columns in [nq, cols) are padding queries, computed and never read.
template <typename T>
void forward_block(const AttentionParams<T>& p, ForwardWorkspace<T>& ws, int64_t b, int64_t h, int64_t i0,
                   int64_t nq) {
  const int64_t cols = round_up(nq, kColumnPad);
  std::fill(ws.qt.begin(), ws.qt.end(), T(0));
  pack_transposed(p.q + p.q_stride.at(b, h, i0), p.q_stride.l, nq, p.D, ws.qt.data(), kBq);
  tile::scale_row(ws.qt.data(), p.D * kBq, static_cast<T>(p.scale));
  const T no_op = static_cast<T>(p.no_op_logit(h));
  std::fill(ws.m.begin(), ws.m.end(), no_op);
  std::fill(ws.l.begin(), ws.l.end(), no_op == kNegInf<T> ? T(0) : T(1));
  std::fill(ws.o.begin(), ws.o.end(), T(0));
  const int64_t key_end = p.visible_keys(i0 + nq - 1);  // the block's last query sees the most keys
  for (int64_t j0 = 0; j0 < key_end; j0 += kBk) {
    const int64_t nk = std::min(kBk, key_end - j0);
    forward_logits(p, ws, b, h, i0, nq, cols, j0, nk);
    std::copy(ws.m.begin(), ws.m.end(), ws.shift.begin());
    tile::column_max(ws.st.data(), nk, kBq, cols, ws.shift.data());
    for (int64_t c = 0; c < cols; ++c) {
      const T m_new = ws.shift[c];
      ws.shift[c] = m_new == kNegInf<T> ? T(0) : m_new;  // nothing visible yet (n = 0): exp(-inf - 0) = 0
      ws.alpha[c] = std::exp(ws.m[c] - ws.shift[c]);
      ws.l[c] *= ws.alpha[c];
      ws.m[c] = m_new;
    }
    tile::exp_shift_columns(ws.st.data(), nk, kBq, cols, ws.shift.data(), ws.l.data());
    if (p.clipped) continue;  // the first pass only needs the normaliser
    for (int64_t r = 0; r < nq; ++r)
      if (ws.alpha[r] != T(1)) tile::scale_row(ws.o.data() + r * ws.ldv, ws.ldv, ws.alpha[r]);
    accumulate_values(p, ws, b, h, nq, j0, nk);
  }
  T* lse = p.lse + (b * p.H + h) * p.Lq + i0;
  for (int64_t r = 0; r < nq; ++r) lse[r] = ws.l[r] > 0 ? ws.m[r] + std::log(ws.l[r]) : kNegInf<T>;
  if (p.clipped) {
    T shift[kBq];  // columns r >= nq are padding queries: computed, never read
    for (int64_t r = 0; r < cols; ++r) shift[r] = r < nq ? probability_shift(lse[r]) : -kNegInf<T>;
    for (int64_t j0 = 0; j0 < key_end; j0 += kBk) {
      const int64_t nk = std::min(kBk, key_end - j0);
      forward_logits(p, ws, b, h, i0, nq, cols, j0, nk);
      tile::clip_columns(ws.st.data(), nk, kBq, cols, shift, static_cast<T>(p.eta - p.gamma), static_cast<T>(p.gamma));
      accumulate_values(p, ws, b, h, nq, j0, nk);
    }
  }
  for (int64_t r = 0; r < nq; ++r) {
    const T inv = p.clipped ? T(1) : (ws.l[r] > 0 ? T(1) / ws.l[r] : T(0));
    T* out = p.out + ((b * p.H + h) * p.Lq + i0 + r) * p.Dv;
    for (int64_t c = 0; c < p.Dv; ++c) out[c] = ws.o[r * ws.ldv + c] * inv;
  }
}

// Per-(batch, head) buffers of the backward kernel: whole-head packs of Q (scaled), dO and dQ, per-block K/V packs.
template <typename T>
struct BackwardWorkspace {
  int64_t ldq, ldv;
  std::vector<T> q, dout, dq, kt, k, vt, dk, dv, s, dp, clipped;
  BackwardWorkspace(const AttentionParams<T>& p)
      : ldq(round_up(p.D, kColumnPad)),
        ldv(round_up(p.Dv, kColumnPad)),
        q(p.Lq * ldq, T(0)),
        dout(p.Lq * ldv, T(0)),
        dq(p.Lq * ldq),
        kt(p.D * kBk, T(0)),
        k(kBk * ldq, T(0)),
        vt(p.Dv * kBk, T(0)),
        dk(kBk * ldq),
        dv(kBk * ldv),
        s(kBq * kBk),
        dp(kBq * kBk),
        clipped(p.clipped ? kBq * kBk : 0) {}
};

// For one (query block, key block) pair: s = exact probabilities (0 where hidden), dp = dL/dp of the exact
// probabilities (dO V^T, times the clip's derivative for clipped) and, for clipped, the clipped probabilities that
// multiplied V. Hidden entries get probability 0.
template <typename T>
void probability_tiles(const AttentionBackwardParams<T>& g, BackwardWorkspace<T>& ws, int64_t b, int64_t h,
                       int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
  const auto& p = g.fwd;
  tile::gemm(nq, round_up(nk, kColumnPad), p.D, ws.q.data() + i0 * ws.ldq, ws.ldq, ws.kt.data(), kBk, ws.s.data(), kBk,
             false);
  mask_tile(p, b, h, i0, nq, j0, nk, ws.s.data(), kBk, 1);
  tile::gemm(nq, round_up(nk, kColumnPad), p.Dv, ws.dout.data() + i0 * ws.ldv, ws.ldv, ws.vt.data(), kBk,
             ws.dp.data(), kBk, false);
  const T* lse = p.lse + (b * p.H + h) * p.Lq + i0;
  T shift[kBq];
  for (int64_t r = 0; r < nq; ++r) shift[r] = probability_shift(lse[r]);
  if (!p.clipped) {
    tile::exp_shift_rows(ws.s.data(), nq, kBk, round_up(nk, 8), shift);
  } else {  // the clip passes gradient only where it does not saturate
    tile::clip_rows(ws.s.data(), ws.clipped.data(), ws.dp.data(), nq, kBk, round_up(nk, 8), shift,
                    static_cast<T>(p.eta - p.gamma), static_cast<T>(p.gamma));
  }
}

template <typename T>
void pack_key_block(const AttentionParams<T>& p, BackwardWorkspace<T>& ws, int64_t b, int64_t h, int64_t j0,
                    int64_t nk) {
  const T* k = p.k + p.k_stride.at(b, h, j0);
  const T* v = p.v + p.v_stride.at(b, h, j0);
  pack_transposed(k, p.k_stride.l, nk, p.D, ws.kt.data(), kBk);
  pack_rows(k, p.k_stride.l, nk, p.D, T(1), ws.k.data(), ws.ldq);
  pack_transposed(v, p.v_stride.l, nk, p.Dv, ws.vt.data(), kBk);
}

// First query row that sees key j (causal), i.e. the smallest i with j <= i + (Lk - Lq).
template <typename T>
int64_t first_query_seeing(const AttentionParams<T>& p, int64_t j) {
  return p.causal ? std::max<int64_t>(0, j - (p.Lk - p.Lq)) : 0;
}

// FlashAttention-2 order for one head: key blocks outside (their dK, dV stay in registers of the tile), query blocks
// inside; dQ accumulates over the head in a packed buffer.
template <typename T>
void backward_head(const AttentionBackwardParams<T>& g, BackwardWorkspace<T>& ws, int64_t b, int64_t h) {
  const auto& p = g.fwd;
  const int64_t head = b * p.H + h;
  pack_rows(p.q + p.q_stride.at(b, h, 0), p.q_stride.l, p.Lq, p.D, static_cast<T>(p.scale), ws.q.data(), ws.ldq);
  pack_rows(g.grad_out + head * p.Lq * p.Dv, p.Dv, p.Lq, p.Dv, T(1), ws.dout.data(), ws.ldv);
  std::fill(ws.dq.begin(), ws.dq.end(), T(0));
  T* row_dot = g.row_dot + head * p.Lq;
  if (!p.clipped) {  // sum_j p_j dP_j = dO . O
    const T* out = p.out + head * p.Lq * p.Dv;
    for (int64_t i = 0; i < p.Lq; ++i) {
      T acc = 0;
      for (int64_t c = 0; c < p.Dv; ++c) acc += g.grad_out[(head * p.Lq + i) * p.Dv + c] * out[i * p.Dv + c];
      row_dot[i] = acc;
    }
  } else {  // the clip's derivative changes dL/dp: one more pass over all pairs to get sum_j p_j dL/dp_j
    std::fill(row_dot, row_dot + p.Lq, T(0));
    for (int64_t j0 = 0; j0 < p.Lk; j0 += kBk) {
      const int64_t nk = std::min(kBk, p.Lk - j0);
      pack_key_block(p, ws, b, h, j0, nk);
      for (int64_t i0 = first_query_seeing(p, j0) / kBq * kBq; i0 < p.Lq; i0 += kBq) {
        const int64_t nq = std::min(kBq, p.Lq - i0);
        probability_tiles(g, ws, b, h, i0, nq, j0, nk);
        tile::row_dots(ws.s.data(), ws.dp.data(), nq, kBk, nk, row_dot + i0);
      }
    }
  }
  if (g.grad_lse)
    for (int64_t i = 0; i < p.Lq; ++i) row_dot[i] -= g.grad_lse[head * p.Lq + i];
  for (int64_t j0 = 0; j0 < p.Lk; j0 += kBk) {
    const int64_t nk = std::min(kBk, p.Lk - j0);
    pack_key_block(p, ws, b, h, j0, nk);
    std::fill_n(ws.dk.begin(), nk * ws.ldq, T(0));  // only the block's rows: short sequences have few
    std::fill_n(ws.dv.begin(), nk * ws.ldv, T(0));
    for (int64_t i0 = first_query_seeing(p, j0) / kBq * kBq; i0 < p.Lq; i0 += kBq) {
      const int64_t nq = std::min(kBq, p.Lq - i0);
      probability_tiles(g, ws, b, h, i0, nq, j0, nk);
      // dV += P_used^T dO, with P_used the (clipped) probabilities that multiplied V.
      const T* used = p.clipped ? ws.clipped.data() : ws.s.data();
      tile::gemm<tile::ALayout::kTransposed>(nk, ws.ldv, nq, used, kBk, ws.dout.data() + i0 * ws.ldv, ws.ldv,
                                             ws.dv.data(), ws.ldv, true);
      // dS = P (dP - row_dot); dQ += dS K (scaled at the end); dK += dS^T (scale Q).
      for (int64_t r = 0; r < nq; ++r) {
        const T* prob = ws.s.data() + r * kBk;
        T* ds = ws.dp.data() + r * kBk;
        const T dot = row_dot[i0 + r];
        for (int64_t c = 0; c < nk; ++c) ds[c] = prob[c] * (ds[c] - dot);
      }
      tile::gemm(nq, ws.ldq, nk, ws.dp.data(), kBk, ws.k.data(), ws.ldq, ws.dq.data() + i0 * ws.ldq, ws.ldq, true);
      tile::gemm<tile::ALayout::kTransposed>(nk, ws.ldq, nq, ws.dp.data(), kBk, ws.q.data() + i0 * ws.ldq, ws.ldq,
                                             ws.dk.data(), ws.ldq, true);
    }
    for (int64_t c = 0; c < nk; ++c) {
      std::copy_n(ws.dk.data() + c * ws.ldq, p.D, g.grad_k + (head * p.Lk + j0 + c) * p.D);
      std::copy_n(ws.dv.data() + c * ws.ldv, p.Dv, g.grad_v + (head * p.Lk + j0 + c) * p.Dv);
    }
  }
  const T scale = static_cast<T>(p.scale);
  for (int64_t i = 0; i < p.Lq; ++i)
    for (int64_t c = 0; c < p.D; ++c) g.grad_q[(head * p.Lq + i) * p.D + c] = scale * ws.dq[i * ws.ldq + c];
}

}  // namespace

template <typename T>
void attention_forward(const AttentionParams<T>& p, int64_t task_begin, int64_t task_end) {
  ForwardWorkspace<T> ws(p);
  const int64_t blocks = (p.Lq + kBq - 1) / kBq;
  for (int64_t t = task_begin; t < task_end; ++t) {
    const int64_t head = t / blocks, i0 = (t % blocks) * kBq;
    forward_block(p, ws, head / p.H, head % p.H, i0, std::min(kBq, p.Lq - i0));
  }
}

template <typename T>
void attention_backward(const AttentionBackwardParams<T>& p, int64_t bh_begin, int64_t bh_end) {
  BackwardWorkspace<T> ws(p.fwd);
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) backward_head(p, ws, bh / p.fwd.H, bh % p.fwd.H);
}

template void attention_forward<float>(const AttentionParams<float>&, int64_t, int64_t);
template void attention_forward<double>(const AttentionParams<double>&, int64_t, int64_t);
template void attention_backward<float>(const AttentionBackwardParams<float>&, int64_t, int64_t);
template void attention_backward<double>(const AttentionBackwardParams<double>&, int64_t, int64_t);

}  // namespace outeffhop::kernels::cpu
