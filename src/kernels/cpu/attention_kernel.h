// Fused softmax-family attention on the CPU (see attention_params.h): a tiled flash-style kernel and a scalar
// reference kernel with the same contract. Raw pointers only; callers parallelise over the task ranges.
#pragma once
#include <cstdint>

#include "../attention_params.h"

namespace outeffhop::kernels::cpu {

// Query rows per forward task; a forward task is one (batch, head, query block).
constexpr int64_t kAttentionQueryBlock = 64;

template <typename T>
int64_t attention_forward_tasks(const AttentionParams<T>& p) {
  return p.B * p.H * ((p.Lq + kAttentionQueryBlock - 1) / kAttentionQueryBlock);
}

// Tiled kernel: Q blocks against K/V blocks with the online-softmax recurrence; the no-op key (logit log n or the
// sink) starts the recurrence, so the running max is finite whenever n > 0. Memory: O(block sizes + L) per task.
template <typename T>
void attention_forward(const AttentionParams<T>& p, int64_t task_begin, int64_t task_end);

// Recompute-based backward over (batch, head) pairs [bh_begin, bh_end): bh = b * H + h.
template <typename T>
void attention_backward(const AttentionBackwardParams<T>& p, int64_t bh_begin, int64_t bh_end);

// Scalar reference kernels (one query row at a time, double accumulation), over (batch, head) pairs. Kept for tests
// and used where the tiled kernel was built for an instruction set this CPU lacks.
template <typename T>
void attention_forward_reference(const AttentionParams<T>& p, int64_t bh_begin, int64_t bh_end);

template <typename T>
void attention_backward_reference(const AttentionBackwardParams<T>& p, int64_t bh_begin, int64_t bh_end);

// True when the tiled kernel can run on this CPU (it may be compiled for AVX2/FMA).
bool tiled_attention_supported();

}  // namespace outeffhop::kernels::cpu
