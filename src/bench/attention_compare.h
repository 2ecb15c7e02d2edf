// Attention benchmark harness: the fused kernel and its peers measured in one process on the same inputs and
// threads, as GFLOP/s, ratios and peak memory (DESIGN.md "Performance method").
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

namespace outeffhop::bench {

enum class AttentionImpl {
  kFused,           // outeffhop::attention (n = 1): the fused CPU kernel
  kEagerSoftmax1,   // matmul -> softmax_n(n = 1) -> matmul, L x L scores materialised
  kEagerSoftmax,    // matmul -> softmax -> matmul (vanilla)
  kSdpa,            // at::scaled_dot_product_attention (vanilla softmax)
  kSdpaZeroKey,     // softmax_1 through SDPA: a zero key and value appended (exact, costs a copy of K and V)
  kFusedClipped,    // outeffhop::clipped_attention (n = 1, the clip of table1-cpu's OPT): the fused CPU kernel
  kEagerClippedSoftmax1,  // matmul -> clipped_softmax_n(n = 1) -> matmul, L x L scores materialised
};

const char* impl_name(AttentionImpl impl);
const std::vector<AttentionImpl>& all_impls();

// q, k, v: B x H x L x D float32. Causal uses the top-left rule (Lq == Lk here).
at::Tensor run_attention_impl(AttentionImpl impl, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              bool causal);

struct AttentionBenchConfig {
  std::vector<int64_t> batches = {1, 8};
  std::vector<int64_t> lengths = {128, 512, 1024, 2048, 4096};
  int64_t heads = 12;
  int64_t head_dim = 64;
  bool causal = false;
  bool forward = true;   // time the forward pass
  bool backward = true;  // time forward + backward
  double min_seconds = 0.5;         // repeat each measurement at least this long (and at least 3 times)
  double max_scores_gb = 4.0;       // skip peers whose materialised B x H x L x L scores exceed this
};

struct AttentionBenchRow {
  int64_t batch = 0, length = 0;
  std::string pass;  // "forward" or "forward+backward"
  std::string impl;
  bool skipped = false;  // over max_scores_gb
  double ms = 0;         // median time per call
  double gflops = 0;     // 4 B H L^2 D (half for causal), x3.5 with the backward
  double peak_mb = 0;    // resident memory added at the peak of one call
};

// sgemm GFLOP/s of a square n x n float32 product with the current threads: the machine's ceiling here.
double measure_sgemm_gflops(int64_t n = 2048, double min_seconds = 0.5);

// Runs every (batch, length, pass, impl) point; progress(line) is called before each point.
std::vector<AttentionBenchRow> compare_attention(const AttentionBenchConfig& config,
                                                 const std::function<void(const std::string&)>& progress = {});

}  // namespace outeffhop::bench
