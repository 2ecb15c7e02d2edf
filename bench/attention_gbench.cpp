// Google Benchmark target for attention: every implementation of bench/attention_compare.h at B = 1, H = 12, D = 64,
// forward, with a GFLOP/s counter. `outeffhop bench attention` is the fuller comparison (ratios, memory, backward).
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "bench/attention_compare.h"

namespace {

using outeffhop::bench::AttentionImpl;

void attention_forward(benchmark::State& state, AttentionImpl impl) {
  const int64_t L = state.range(0), H = 12, D = 64;
  at::manual_seed(0);
  const auto q = at::randn({1, H, L, D}), k = at::randn_like(q), v = at::randn_like(q);
  for (auto _ : state) benchmark::DoNotOptimize(outeffhop::bench::run_attention_impl(impl, q, k, v, false));
  state.counters["GFLOP/s"] =
      benchmark::Counter(4.0 * H * L * L * D, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void sgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  const auto a = at::randn({n, n}), b = at::randn({n, n});
  for (auto _ : state) benchmark::DoNotOptimize(at::mm(a, b));
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

}  // namespace

BENCHMARK(sgemm)->Arg(2048)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(attention_forward, fused_softmax1, AttentionImpl::kFused)
    ->RangeMultiplier(2)->Range(128, 2048)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(attention_forward, eager_softmax1, AttentionImpl::kEagerSoftmax1)
    ->RangeMultiplier(2)->Range(128, 2048)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(attention_forward, sdpa_softmax, AttentionImpl::kSdpa)
    ->RangeMultiplier(2)->Range(128, 2048)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(attention_forward, sdpa_zero_key_softmax1, AttentionImpl::kSdpaZeroKey)
    ->RangeMultiplier(2)->Range(128, 2048)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
