// Fused softmax-family attention on CUDA tensor cores (sm_80+ mma.sync), fp16/bf16 inputs, fp32 accumulation:
// a FlashAttention-2-style forward (online softmax whose recurrence starts from the no-op key: log n or the head's
// sink, so the stored LSE includes it) and a recompute-based backward (dK, dV per key block; dQ by atomics into an
// fp32 buffer). Raw pointers only; the host side (src/ops/attention_cuda.cpp) prepares tensors and folds the scale.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace outeffhop::kernels::cuda {

enum class HalfType { kFloat16, kBFloat16 };

struct FlashAttentionParams {
  // B x H x L x D, the last dimension contiguous; rows 16-byte aligned (strides in elements, multiples of 8).
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t q_stride[3] = {}, k_stride[3] = {}, v_stride[3] = {};  // batch, head, row
  int B = 0, H = 0, Lq = 0, Lk = 0, D = 0;                       // D = Dv, one of flash_attention_head_dims

  const float* mask = nullptr;  // optional additive logits broadcast to B x H x Lq x Lk through these strides
  int64_t mask_stride[4] = {};
  const float* sink = nullptr;  // optional H per-head no-op logits; otherwise no_op_logit (log n, -inf for n = 0)
  float no_op_logit = 0.f;
  bool causal = false;  // bottom-right aligned: query i sees keys j <= i + (Lk - Lq)
  float scale = 1.f;

  void* out = nullptr;   // B x H x Lq x D, contiguous, the inputs' type
  float* lse = nullptr;  // B x H x Lq, contiguous: log(no-op + sum_j exp(s_j)); -inf when that sum is empty
};

struct FlashAttentionBackwardParams {
  FlashAttentionParams fwd;        // inputs, and lse from the forward (read)
  const void* grad_out = nullptr;  // B x H x Lq x D, contiguous
  const float* row_dot = nullptr;  // B x H x Lq: rowsum(dO * O) - dL/dlse
  float* grad_q_accum = nullptr;   // B x H x Lq x D, zeroed; receives dL/ds K (the caller multiplies by scale)
  void* grad_k = nullptr;          // B x H x Lk x D, contiguous
  void* grad_v = nullptr;          // B x H x Lk x D, contiguous
};

// Head dimensions the kernels are instantiated for.
bool flash_attention_supports_head_dim(int d);

void flash_attention_forward(const FlashAttentionParams& p, HalfType type, cudaStream_t stream);
void flash_attention_backward(const FlashAttentionBackwardParams& p, HalfType type, cudaStream_t stream);

}  // namespace outeffhop::kernels::cuda
