// Fused softmax-family attention, CUDA: tensor-core tiles (mma.sync m16n8k16, ldmatrix, cp.async) in the
// FlashAttention-2 arrangement, with the no-op key folded into the online softmax from the start.
//
// Fragment layouts (PTX ISA, mma.m16n8k16; g = lane / 4, t = lane % 4): the accumulator c[0..1] holds row g, columns
// 2t and 2t+1 of an 8-column tile, c[2..3] row g + 8. Two adjacent accumulator tiles, packed to 16 bits, are exactly
// the A operand of the next product; this is how P (forward) and dS (backward) stay in registers.
// Shared tiles are row-major with 16-byte chunks XOR-swizzled by (row % 8), so ldmatrix reads are conflict-free.
// Logits are handled in base 2 (t = s * log2 e): exp2 is one instruction.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "attention_kernel.cuh"

namespace outeffhop::kernels::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---------------------------------------------------------------------------------------------------------------
// Register fragments and copies.

template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// c += a * b for one 16x8x16 tile, fp32 accumulation.
template <typename T>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  const auto a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  const auto a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// 16 bytes global -> shared, asynchronously; zero-filled when !valid (src must still be a mapped address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  const auto d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

// A row-major kRows x kCols tile in shared memory, 16-byte chunks swizzled by row (kCols >= 64: chunk ^ 7 stays in
// the row).
template <typename T, int kCols>
struct SmemTile {
  static_assert(kCols % 64 == 0, "the swizzle needs at least 8 chunks per row");
  T* base;
  __device__ __forceinline__ T* at(int row, int chunk) const { return base + row * kCols + ((chunk ^ (row & 7)) << 3); }
};

// Rows [row0, row0 + kRows) of one (batch, head) slice into a tile; rows at or past `rows` are zero-filled.
template <int kRows, int kThreads, typename T, int kCols>
__device__ __forceinline__ void load_rows(SmemTile<T, kCols> tile, const T* src, int64_t row_stride, int row0,
                                          int rows) {
  constexpr int kChunks = kCols / 8;
  for (int i = threadIdx.x; i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const bool valid = row0 + r < rows;
    cp_async16(tile.at(r, c), valid ? src + (row0 + r) * row_stride + c * 8 : src, valid);
  }
}

// ldmatrix address patterns (lane l supplies one row address of matrix l / 8):
// A operand (16 x 16 at rows m0.., k chunks kc, kc+1) from a tile stored [m][k].
template <typename T, int C>
__device__ __forceinline__ void load_a(uint32_t (&r)[4], SmemTile<T, C> t, int m0, int kc, int lane) {
  ldsm_x4(r, t.at(m0 + (lane & 7) + (lane & 8), kc + (lane >> 4)));
}
// A operand from a tile stored transposed, [k][m] (k rows k0.., m chunks mc, mc+1).
template <typename T, int C>
__device__ __forceinline__ void load_a_trans(uint32_t (&r)[4], SmemTile<T, C> t, int k0, int mc, int lane) {
  ldsm_x4_trans(r, t.at(k0 + (lane & 7) + ((lane >> 4) << 3), mc + ((lane >> 3) & 1)));
}
// B operands of two adjacent 8-column tiles (n rows n0..n0+15, k chunks kc, kc+1) from a tile stored [n][k]:
// r[0..1] for columns n0.., r[2..3] for n0 + 8...
template <typename T, int C>
__device__ __forceinline__ void load_b_pair(uint32_t (&r)[4], SmemTile<T, C> t, int n0, int kc, int lane) {
  ldsm_x4(r, t.at(n0 + (lane & 7) + ((lane >> 4) << 3), kc + ((lane >> 3) & 1)));
}
// The same from a tile stored [k][n] (k rows k0..k0+15, n chunks nc, nc+1).
template <typename T, int C>
__device__ __forceinline__ void load_b_pair_trans(uint32_t (&r)[4], SmemTile<T, C> t, int k0, int nc, int lane) {
  ldsm_x4_trans(r, t.at(k0 + (lane & 7) + (lane & 8), nc + (lane >> 4)));
}

// Accumulator tiles 2j and 2j+1 (16 rows x 16 columns) as the A operand of the next product.
template <typename T>
__device__ __forceinline__ void accumulators_as_a(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack2<T>(lo[0], lo[1]);
  a[1] = pack2<T>(lo[2], lo[3]);
  a[2] = pack2<T>(hi[0], hi[1]);
  a[3] = pack2<T>(hi[2], hi[3]);
}

// 2^x in one MUFU instruction (relative error ~2^-22, far below half precision; -inf gives 0). exp2f adds range
// handling the softmax does not need.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// acc (16 x N) += A B^T for one warp: A the 16 rows m0.. of a tile stored [m][k], B the N rows of a tile stored [n][k]
// (k = K columns in both): e.g. S^T = K Q^T.
template <typename T, int K, int N, int CA, int CB>
__device__ __forceinline__ void rows_times_transposed(float (&acc)[N / 8][4], SmemTile<T, CA> a_tile, int m0,
                                                      SmemTile<T, CB> b_tile, int lane) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t a[4];
    load_a(a, a_tile, m0, 2 * kk, lane);
#pragma unroll
    for (int j = 0; j < N / 16; ++j) {
      uint32_t bb[4];
      load_b_pair(bb, b_tile, 16 * j, 2 * kk, lane);
      mma<T>(acc[2 * j], a, bb[0], bb[1]);
      mma<T>(acc[2 * j + 1], a, bb[2], bb[3]);
    }
  }
}

// acc (16 x N) += P B for one warp: P (16 x K) in accumulator layout (registers), B a tile stored [k][n]: e.g.
// dV += P^T dO.
template <typename T, int K, int N, int C>
__device__ __forceinline__ void accumulators_times_tile(float (&acc)[N / 8][4], const float (&p)[K / 8][4],
                                                        SmemTile<T, C> b_tile, int lane) {
#pragma unroll
  for (int kq = 0; kq < K / 16; ++kq) {
    uint32_t a[4];
    accumulators_as_a<T>(a, p[2 * kq], p[2 * kq + 1]);
#pragma unroll
    for (int c = 0; c < N / 16; ++c) {
      uint32_t bb[4];
      load_b_pair_trans(bb, b_tile, 16 * kq, 2 * c, lane);
      mma<T>(acc[2 * c], a, bb[0], bb[1]);
      mma<T>(acc[2 * c + 1], a, bb[2], bb[3]);
    }
  }
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// The base-2 logit of one (query, key) pair from its scaled product, with the additive mask, causal rule and
// sequence ends applied (-inf when hidden). `check_edges` is false for tiles wholly inside both sequences and below
// the causal diagonal.
__device__ __forceinline__ float logit2(const FlashAttentionParams& p, float scaled, const float* mask, int query,
                                        int key, bool check_edges) {
  if (check_edges && (key >= p.Lk || query >= p.Lq || (p.causal && key > query + (p.Lk - p.Lq)))) return -INFINITY;
  if (mask) scaled += mask[query * p.mask_stride[2] + key * p.mask_stride[3]] * kLog2e;
  return scaled;
}

// ---------------------------------------------------------------------------------------------------------------
// Forward: one CTA per (batch x head, 128 queries); each warp owns kTiles 16-row MMA tiles of queries (at D = 64 two,
// so every K and V fragment read from shared memory feeds twice the MMAs; at D = 128 one, which leaves the output
// accumulators room in registers); keys in double-buffered blocks of 64.

template <int D>
struct ForwardShape {
  static constexpr int kTiles = D > 64 ? 1 : 2, kWarps = 8 / kTiles, kRows = 128, kKeys = 64;
};

template <typename T, int D>
__global__ void __launch_bounds__(ForwardShape<D>::kWarps * 32) forward_kernel(const FlashAttentionParams p) {
  using Shape = ForwardShape<D>;
  constexpr int kFwdWarps = Shape::kWarps, kFwdTiles = Shape::kTiles, kFwdRows = Shape::kRows;
  constexpr int kFwdKeys = Shape::kKeys, kThreads = kFwdWarps * 32;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* smem = reinterpret_cast<T*>(smem_bytes);
  const SmemTile<T, D> q_tile{smem};
  // Double buffers, selected by arithmetic (an indexed array of tiles would live in local memory).
  const auto k_tile = [&](int buffer) { return SmemTile<T, D>{smem + (kFwdRows + buffer * kFwdKeys) * D}; };
  const auto v_tile = [&](int buffer) { return SmemTile<T, D>{smem + (kFwdRows + (2 + buffer) * kFwdKeys) * D}; };

  const int b = blockIdx.x / p.H, h = blockIdx.x % p.H, q0 = blockIdx.y * kFwdRows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, tq = lane & 3;
  const T* q = static_cast<const T*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1];
  const T* k = static_cast<const T*>(p.k) + b * p.k_stride[0] + h * p.k_stride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.v_stride[0] + h * p.v_stride[1];
  const float* mask = p.mask ? p.mask + b * p.mask_stride[0] + h * p.mask_stride[1] : nullptr;
  const int diagonal = p.Lk - p.Lq;

  // Keys past key_end are hidden from every query of this CTA by the causal rule.
  int key_end = p.Lk;
  if (p.causal) key_end = max(0, min(p.Lk, q0 + kFwdRows + diagonal));
  const int n_blocks = (key_end + kFwdKeys - 1) / kFwdKeys;

  load_rows<kFwdRows, kThreads>(q_tile, q, p.q_stride[2], q0, p.Lq);
  if (n_blocks > 0) {
    load_rows<kFwdKeys, kThreads>(k_tile(0), k, p.k_stride[2], 0, p.Lk);
    load_rows<kFwdKeys, kThreads>(v_tile(0), v, p.v_stride[2], 0, p.Lk);
  }
  cp_async_commit();

  // Row r of this thread: tile r / 2, row g (+ 8 for odd r). The recurrence starts from the no-op key: running max m =
  // its logit, running sum 1 (kept by one thread of the quad that shares the row; partial sums are added at the end).
  constexpr int kRows = 2 * kFwdTiles;
  const float no_op = (p.sink ? p.sink[h] : p.no_op_logit) * kLog2e;
  const float scale2 = p.scale * kLog2e;
  const float l0 = (tq == 0 && no_op > -INFINITY) ? 1.f : 0.f;
  float m[kRows], l[kRows];
  int rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = no_op, l[r] = l0;
    rows[r] = q0 + (warp * kFwdTiles + r / 2) * 16 + g + (r & 1) * 8;
  }
  float o[kFwdTiles][D / 8][4] = {};

  for (int kb = 0; kb < n_blocks; ++kb) {
    cp_async_wait_all();
    __syncthreads();  // this block's tiles are in; every warp is done with the other buffer
    if (kb + 1 < n_blocks) {
      load_rows<kFwdKeys, kThreads>(k_tile((kb + 1) & 1), k, p.k_stride[2], (kb + 1) * kFwdKeys, p.Lk);
      load_rows<kFwdKeys, kThreads>(v_tile((kb + 1) & 1), v, p.v_stride[2], (kb + 1) * kFwdKeys, p.Lk);
    }
    cp_async_commit();
    const auto kt = k_tile(kb & 1);
    const auto vt = v_tile(kb & 1);

    float s[kFwdTiles][kFwdKeys / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t a[kFwdTiles][4];
#pragma unroll
      for (int mt = 0; mt < kFwdTiles; ++mt) load_a(a[mt], q_tile, (warp * kFwdTiles + mt) * 16, 2 * kk, lane);
#pragma unroll
      for (int j = 0; j < kFwdKeys / 16; ++j) {
        uint32_t bb[4];
        load_b_pair(bb, kt, 16 * j, 2 * kk, lane);
#pragma unroll
        for (int mt = 0; mt < kFwdTiles; ++mt) {
          mma<T>(s[mt][2 * j], a[mt], bb[0], bb[1]);
          mma<T>(s[mt][2 * j + 1], a[mt], bb[2], bb[3]);
        }
      }
    }

    const int key0 = kb * kFwdKeys;
    const bool edges = key0 + kFwdKeys > p.Lk || q0 + kFwdRows > p.Lq ||
                       (p.causal && key0 + kFwdKeys - 1 > q0 + diagonal);
    float row_max[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) row_max[r] = -INFINITY;
#pragma unroll
    for (int mt = 0; mt < kFwdTiles; ++mt)
#pragma unroll
      for (int nt = 0; nt < kFwdKeys / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = 2 * mt + (e >> 1), key = key0 + nt * 8 + 2 * tq + (e & 1);
          s[mt][nt][e] = logit2(p, s[mt][nt][e] * scale2, mask, rows[r], key, edges);
          row_max[r] = fmaxf(row_max[r], s[mt][nt][e]);
        }
    float shift[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float m_new = fmaxf(m[r], quad_max(row_max[r]));
      shift[r] = m_new == -INFINITY ? 0.f : m_new;  // nothing seen yet: keep exp2 away from -inf - -inf
      const float alpha = fast_exp2(m[r] - shift[r]);
      m[r] = m_new;
      l[r] *= alpha;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) o[r / 2][n][2 * (r & 1)] *= alpha, o[r / 2][n][2 * (r & 1) + 1] *= alpha;
    }
#pragma unroll
    for (int mt = 0; mt < kFwdTiles; ++mt)
#pragma unroll
      for (int nt = 0; nt < kFwdKeys / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = 2 * mt + (e >> 1);
          s[mt][nt][e] = fast_exp2(s[mt][nt][e] - shift[r]);
          l[r] += s[mt][nt][e];
        }

#pragma unroll
    for (int kk = 0; kk < kFwdKeys / 16; ++kk) {
      uint32_t a[kFwdTiles][4];
#pragma unroll
      for (int mt = 0; mt < kFwdTiles; ++mt) accumulators_as_a<T>(a[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
#pragma unroll
      for (int c = 0; c < D / 16; ++c) {
        uint32_t bb[4];
        load_b_pair_trans(bb, vt, 16 * kk, 2 * c, lane);
#pragma unroll
        for (int mt = 0; mt < kFwdTiles; ++mt) {
          mma<T>(o[mt][2 * c], a[mt], bb[0], bb[1]);
          mma<T>(o[mt][2 * c + 1], a[mt], bb[2], bb[3]);
        }
      }
    }
  }
  cp_async_wait_all();

  const int64_t bh = static_cast<int64_t>(b) * p.H + h;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const float sum = quad_sum(l[r]);
    if (rows[r] >= p.Lq) continue;
    const float inv = sum > 0 ? 1.f / sum : 0.f;  // an empty row (no no-op key, every key hidden) is zeros
    T* out = static_cast<T*>(p.out) + (bh * p.Lq + rows[r]) * D;
    const int e = 2 * (r & 1);
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<uint32_t*>(out + n * 8 + 2 * tq) = pack2<T>(o[r / 2][n][e] * inv, o[r / 2][n][e + 1] * inv);
    if (tq == 0) p.lse[bh * p.Lq + rows[r]] = sum > 0 ? (m[r] + log2f(sum)) * kLn2 : -INFINITY;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Backward: one CTA per (batch x head, 64 keys); each warp owns 16 keys and accumulates their dK, dV in registers
// while the CTA walks the query blocks that can see them. Per block, with S^T = K Q^T computed directly (so P^T is
// in accumulator layout): P^T = exp(S^T - lse), dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - row_dot),
// dK += dS^T Q, and dQ += dS K through shared memory and fp32 atomics.

constexpr int kBwdWarps = 4, kBwdKeys = 16 * kBwdWarps, kBwdRows = 64;

template <typename T, int D>
__global__ void __launch_bounds__(kBwdWarps * 32) backward_kernel(const FlashAttentionBackwardParams g) {
  constexpr int kThreads = kBwdWarps * 32;
  const FlashAttentionParams& p = g.fwd;
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  T* smem = reinterpret_cast<T*>(smem_bytes);
  // K, V of this block; Q, dO and their rows' lse / row_dot double-buffered (the next query block streams in while
  // this one is computed); dS^T (keys x queries) for the dQ product.
  constexpr int kQBuf = 2 * kBwdRows * D;  // elements of one Q + dO buffer
  const SmemTile<T, D> k_tile{smem}, v_tile{smem + kBwdKeys * D};
  T* q_buffers = smem + 2 * kBwdKeys * D;
  const SmemTile<T, kBwdRows> ds_tile{q_buffers + 2 * kQBuf};
  float* row_stats = reinterpret_cast<float*>(q_buffers + 2 * kQBuf + kBwdKeys * kBwdRows);  // [buffer][lse2|delta]
  const int b = blockIdx.x / p.H, h = blockIdx.x % p.H, key0 = blockIdx.y * kBwdKeys;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane >> 2, tq = lane & 3;
  const int64_t bh = static_cast<int64_t>(b) * p.H + h;
  const T* q = static_cast<const T*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1];
  const T* k = static_cast<const T*>(p.k) + b * p.k_stride[0] + h * p.k_stride[1];
  const T* v = static_cast<const T*>(p.v) + b * p.v_stride[0] + h * p.v_stride[1];
  const T* dout = static_cast<const T*>(g.grad_out) + bh * p.Lq * D;
  const float* lse = p.lse + bh * p.Lq;
  const float* row_dot = g.row_dot + bh * p.Lq;
  float* dq = g.grad_q_accum + bh * p.Lq * D;
  const float* mask = p.mask ? p.mask + b * p.mask_stride[0] + h * p.mask_stride[1] : nullptr;
  const int diagonal = p.Lk - p.Lq;
  const float scale2 = p.scale * kLog2e;

  load_rows<kBwdKeys, kThreads>(k_tile, k, p.k_stride[2], key0, p.Lk);
  load_rows<kBwdKeys, kThreads>(v_tile, v, p.v_stride[2], key0, p.Lk);
  cp_async_commit();

  float dk[D / 8][4] = {}, dv[D / 8][4] = {};
  const int kw = warp * 16;  // this warp's keys within the block
  const int keys[2] = {key0 + kw + gr, key0 + kw + gr + 8};
  // Queries before key0 - diagonal see none of these keys under the causal rule.
  const int first_block = p.causal ? max(0, key0 - diagonal) / kBwdRows : 0;
  const int n_blocks = (p.Lq + kBwdRows - 1) / kBwdRows;

  // Starts the copies of query block qb into buffer qb % 2 (tiles by cp.async, row statistics by plain stores).
  const auto load_query_block = [&](int qb) {
    const int q0 = qb * kBwdRows, buffer = qb & 1;
    load_rows<kBwdRows, kThreads>(SmemTile<T, D>{q_buffers + buffer * kQBuf}, q, p.q_stride[2], q0, p.Lq);
    load_rows<kBwdRows, kThreads>(SmemTile<T, D>{q_buffers + buffer * kQBuf + kBwdRows * D}, dout, D, q0, p.Lq);
    float* stats = row_stats + buffer * 2 * kBwdRows;
    for (int i = threadIdx.x; i < kBwdRows; i += kThreads) {
      const bool valid = q0 + i < p.Lq;
      const float row_lse = valid ? lse[q0 + i] : -INFINITY;
      stats[i] = row_lse == -INFINITY ? INFINITY : row_lse * kLog2e;  // empty rows: every p_j = 0
      stats[kBwdRows + i] = valid ? row_dot[q0 + i] : 0.f;
    }
  };
  if (first_block < n_blocks) load_query_block(first_block);
  cp_async_commit();

  for (int qb = first_block; qb < n_blocks; ++qb) {
    const int q0 = qb * kBwdRows;
    cp_async_wait_all();
    __syncthreads();  // block qb is in; every warp is done with the other buffer and with dS^T
    if (qb + 1 < n_blocks) load_query_block(qb + 1);
    cp_async_commit();
    const SmemTile<T, D> q_tile{q_buffers + (qb & 1) * kQBuf}, do_tile{q_buffers + (qb & 1) * kQBuf + kBwdRows * D};
    const float* lse2 = row_stats + (qb & 1) * 2 * kBwdRows;
    const float* delta = lse2 + kBwdRows;

    float s[kBwdRows / 8][4] = {};  // S^T = K Q^T, then P^T
    rows_times_transposed<T, D, kBwdRows>(s, k_tile, kw, q_tile, lane);
    const bool edges = key0 + kBwdKeys > p.Lk || q0 + kBwdRows > p.Lq ||
                       (p.causal && key0 + kBwdKeys - 1 > q0 + diagonal);
#pragma unroll
    for (int nt = 0; nt < kBwdRows / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = nt * 8 + 2 * tq + (e & 1);
        s[nt][e] = fast_exp2(logit2(p, s[nt][e] * scale2, mask, q0 + col, keys[e >> 1], edges) - lse2[col]);
      }

    accumulators_times_tile<T, kBwdRows, D>(dv, s, do_tile, lane);  // dV += P^T dO

    float ds[kBwdRows / 8][4] = {};  // dP^T = V dO^T, then dS^T
    rows_times_transposed<T, D, kBwdRows>(ds, v_tile, kw, do_tile, lane);
#pragma unroll
    for (int nt = 0; nt < kBwdRows / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) ds[nt][e] = s[nt][e] * (ds[nt][e] - delta[nt * 8 + 2 * tq + (e & 1)]);

    accumulators_times_tile<T, kBwdRows, D>(dk, ds, q_tile, lane);  // dK += dS^T Q
#pragma unroll
    for (int nt = 0; nt < kBwdRows / 8; ++nt) {
      *reinterpret_cast<uint32_t*>(ds_tile.at(kw + gr, nt) + 2 * tq) = pack2<T>(ds[nt][0], ds[nt][1]);
      *reinterpret_cast<uint32_t*>(ds_tile.at(kw + gr + 8, nt) + 2 * tq) = pack2<T>(ds[nt][2], ds[nt][3]);
    }
    __syncthreads();

    // dQ[q0.., :] += dS K: work units of 16 queries x 64 head columns spread over the warps; each dS fragment read
    // feeds 8 MMAs.
    constexpr int kCols = 64, kGroups = D / kCols;
    for (int unit = warp; unit < (kBwdRows / 16) * kGroups; unit += kBwdWarps) {
      const int qt = unit / kGroups, col0 = (unit % kGroups) * kCols;
      float acc[kCols / 8][4] = {};
#pragma unroll
      for (int kk = 0; kk < kBwdKeys / 16; ++kk) {
        uint32_t a[4];
        load_a_trans(a, ds_tile, 16 * kk, 2 * qt, lane);
#pragma unroll
        for (int c = 0; c < kCols / 16; ++c) {
          uint32_t bb[4];
          load_b_pair_trans(bb, k_tile, 16 * kk, col0 / 8 + 2 * c, lane);
          mma<T>(acc[2 * c], a, bb[0], bb[1]);
          mma<T>(acc[2 * c + 1], a, bb[2], bb[3]);
        }
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = q0 + qt * 16 + gr + (e >> 1) * 8;
        if (row >= p.Lq) continue;
#pragma unroll
        for (int n = 0; n < kCols / 8; ++n)
          atomicAdd(dq + int64_t{row} * D + col0 + n * 8 + 2 * tq + (e & 1), acc[n][e]);
      }
    }
  }
  cp_async_wait_all();

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (keys[i] >= p.Lk) continue;
    T* gk = static_cast<T*>(g.grad_k) + (bh * p.Lk + keys[i]) * D;
    T* gv = static_cast<T*>(g.grad_v) + (bh * p.Lk + keys[i]) * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      *reinterpret_cast<uint32_t*>(gk + n * 8 + 2 * tq) =
          pack2<T>(dk[n][2 * i] * p.scale, dk[n][2 * i + 1] * p.scale);
      *reinterpret_cast<uint32_t*>(gv + n * 8 + 2 * tq) = pack2<T>(dv[n][2 * i], dv[n][2 * i + 1]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Launches.

template <typename Kernel, typename Params>
void launch(Kernel kernel, dim3 grid, int threads, size_t smem, cudaStream_t stream, const Params& p) {
  // Above 48 KB of dynamic shared memory a kernel must opt in.
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  kernel<<<grid, threads, smem, stream>>>(p);
}

template <typename T, int D>
void forward(const FlashAttentionParams& p, cudaStream_t stream) {
  using Shape = ForwardShape<D>;
  const size_t smem = size_t{Shape::kRows + 4 * Shape::kKeys} * D * sizeof(T);
  const dim3 grid(p.B * p.H, (p.Lq + Shape::kRows - 1) / Shape::kRows);
  launch(forward_kernel<T, D>, grid, Shape::kWarps * 32, smem, stream, p);
}

template <typename T, int D>
void backward(const FlashAttentionBackwardParams& p, cudaStream_t stream) {
  const size_t smem =
      size_t{2 * kBwdKeys * D + 4 * kBwdRows * D + kBwdKeys * kBwdRows} * sizeof(T) + 4 * kBwdRows * sizeof(float);
  const dim3 grid(p.fwd.B * p.fwd.H, (p.fwd.Lk + kBwdKeys - 1) / kBwdKeys);
  launch(backward_kernel<T, D>, grid, kBwdWarps * 32, smem, stream, p);
}

template <typename T, typename Params>
void dispatch_head_dim(const Params& p, int d, cudaStream_t stream) {
  constexpr bool kForward = std::is_same_v<Params, FlashAttentionParams>;
  if (d == 64) {
    if constexpr (kForward) forward<T, 64>(p, stream); else backward<T, 64>(p, stream);
  } else {
    if constexpr (kForward) forward<T, 128>(p, stream); else backward<T, 128>(p, stream);
  }
}

}  // namespace

bool flash_attention_supports_head_dim(int d) { return d == 64 || d == 128; }

void flash_attention_forward(const FlashAttentionParams& p, HalfType type, cudaStream_t stream) {
  if (p.B * p.H == 0 || p.Lq == 0) return;
  if (type == HalfType::kFloat16)
    dispatch_head_dim<__half>(p, p.D, stream);
  else
    dispatch_head_dim<__nv_bfloat16>(p, p.D, stream);
}

void flash_attention_backward(const FlashAttentionBackwardParams& p, HalfType type, cudaStream_t stream) {
  if (p.fwd.B * p.fwd.H == 0 || p.fwd.Lk == 0) return;
  if (type == HalfType::kFloat16)
    dispatch_head_dim<__half>(p, p.fwd.D, stream);
  else
    dispatch_head_dim<__nv_bfloat16>(p, p.fwd.D, stream);
}

}  // namespace outeffhop::kernels::cuda
