// Attention benchmark harness (see attention_compare.h): implementations under comparison, timing, peak memory.
#include "attention_compare.h"

#include <ATen/ATen.h>
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "outeffhop/attention.h"
#include "outeffhop/softmax.h"
#include "timing.h"

namespace outeffhop::bench {
namespace {

// kB of a "VmRSS:"/"VmHWM:" line of /proc/self/status.
double status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size()));
  return 0;
}

// Peak resident memory of one call, relative to before it: resets the high-water mark (Linux clear_refs 5).
double peak_mb_of(const std::function<void()>& call) {
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  const double before = status_kb("VmRSS:");
  call();
  return std::max(0.0, status_kb("VmHWM:") - before) / 1024.0;
}

at::Tensor scores(const at::Tensor& q, const at::Tensor& k, bool causal) {
  auto s = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  if (causal) {
    const int64_t L = q.size(2);
    s = s.masked_fill(at::ones({L, L}, q.options().dtype(at::kBool)).triu(1), -INFINITY);
  }
  return s;
}

bool materialises_scores(AttentionImpl impl) {
  return impl == AttentionImpl::kEagerSoftmax1 || impl == AttentionImpl::kEagerSoftmax ||
         impl == AttentionImpl::kEagerClippedSoftmax1;
}

// The clipped variants' range: gamma = -alpha/T with alpha 12 and T = 128 (table1-cpu's OPT), eta = 1.
constexpr double kClipGamma = -0.09375, kClipEta = 1.0;

}  // namespace

const char* impl_name(AttentionImpl impl) {
  switch (impl) {
    case AttentionImpl::kFused: return "fused_softmax1";
    case AttentionImpl::kEagerSoftmax1: return "eager_softmax1";
    case AttentionImpl::kEagerSoftmax: return "eager_softmax";
    case AttentionImpl::kSdpa: return "sdpa_softmax";
    case AttentionImpl::kSdpaZeroKey: return "sdpa_zero_key_softmax1";
    case AttentionImpl::kFusedClipped: return "fused_clipped_softmax1";
    case AttentionImpl::kEagerClippedSoftmax1: return "eager_clipped_softmax1";
  }
  return "?";
}

const std::vector<AttentionImpl>& all_impls() {
  static const std::vector<AttentionImpl> impls = {AttentionImpl::kFused, AttentionImpl::kEagerSoftmax1,
                                                   AttentionImpl::kEagerSoftmax, AttentionImpl::kSdpa,
                                                   AttentionImpl::kSdpaZeroKey, AttentionImpl::kFusedClipped,
                                                   AttentionImpl::kEagerClippedSoftmax1};
  return impls;
}

at::Tensor run_attention_impl(AttentionImpl impl, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              bool causal) {
  switch (impl) {
    case AttentionImpl::kFused: {
      AttentionOptions opt;
      opt.causal = causal;
      return attention(q, k, v, opt);
    }
    case AttentionImpl::kEagerSoftmax1:
      return at::matmul(softmax_n(scores(q, k, causal), 1.0, -1), v);
    case AttentionImpl::kEagerSoftmax:
      return at::matmul(at::softmax(scores(q, k, causal), -1), v);
    case AttentionImpl::kFusedClipped: {
      AttentionOptions opt;
      opt.causal = causal;
      return clipped_attention(q, k, v, kClipGamma, kClipEta, opt);
    }
    case AttentionImpl::kEagerClippedSoftmax1:
      return at::matmul(clipped_softmax_n(scores(q, k, causal), 1.0, kClipGamma, kClipEta, -1), v);
    case AttentionImpl::kSdpa:
      return at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal);
    case AttentionImpl::kSdpaZeroKey: {
      auto zeros = [](const at::Tensor& t) { return at::zeros({t.size(0), t.size(1), 1, t.size(3)}, t.options()); };
      const auto kz = at::cat({k, zeros(k)}, 2), vz = at::cat({v, zeros(v)}, 2);
      std::optional<at::Tensor> mask;
      if (causal) {  // query i sees keys 0..i and the zero key (the last column)
        const int64_t L = q.size(2);
        mask = at::cat({at::ones({L, L}, q.options().dtype(at::kBool)).tril(),
                        at::ones({L, 1}, q.options().dtype(at::kBool))},
                       1);
      }
      return at::scaled_dot_product_attention(q, kz, vz, mask, 0.0, false);
    }
  }
  TORCH_CHECK(false, "unknown attention implementation");
}

double measure_sgemm_gflops(int64_t n, double min_seconds) {
  const auto a = at::randn({n, n}), b = at::randn({n, n});
  const double s = median_seconds([&] { at::mm(a, b); }, min_seconds);
  return 2.0 * n * n * n / s / 1e9;
}

std::vector<AttentionBenchRow> compare_attention(const AttentionBenchConfig& c,
                                                 const std::function<void(const std::string&)>& progress) {
  // A fixed mmap threshold makes glibc return every large block on free, so resident memory tracks live tensors.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  std::vector<AttentionBenchRow> rows;
  std::vector<std::string> passes;
  if (c.forward) passes.emplace_back("forward");
  if (c.backward) passes.emplace_back("forward+backward");
  for (const int64_t B : c.batches) {
    for (const int64_t L : c.lengths) {
      at::manual_seed(0);
      const auto q = at::randn({B, c.heads, L, c.head_dim}), k = at::randn_like(q), v = at::randn_like(q);
      const double flops = 4.0 * B * c.heads * L * L * c.head_dim * (c.causal ? 0.5 : 1.0);
      const double scores_gb = 4.0 * B * c.heads * L * L / 1e9;
      for (const auto& pass : passes) {
        const bool with_backward = pass != "forward";
        for (const auto impl : all_impls()) {
          AttentionBenchRow row{B, L, pass, impl_name(impl)};
          if (progress) {
            std::ostringstream line;
            line << "B=" << B << " L=" << L << " " << pass << " " << row.impl;
            progress(line.str());
          }
          // Eager autograd keeps about three score-sized tensors alive.
          if (materialises_scores(impl) && scores_gb * (with_backward ? 3 : 1) > c.max_scores_gb) {
            row.skipped = true;
            rows.push_back(row);
            continue;
          }
          const auto qg = q.detach().requires_grad_(with_backward), kg = k.detach().requires_grad_(with_backward);
          const auto vg = v.detach().requires_grad_(with_backward);
          const auto grad = with_backward ? at::randn_like(q) : at::Tensor();
          auto call = [&] {
            auto out = run_attention_impl(impl, qg, kg, vg, c.causal);
            if (with_backward) {
              out.backward(grad);
              for (const auto* t : {&qg, &kg, &vg}) t->mutable_grad().reset();
            }
          };
          row.ms = 1e3 * median_seconds(call, c.min_seconds);
          row.gflops = flops * (with_backward ? 3.5 : 1.0) / (row.ms / 1e3) / 1e9;
          row.peak_mb = peak_mb_of(call);
          rows.push_back(row);
        }
      }
    }
  }
  return rows;
}

}  // namespace outeffhop::bench
