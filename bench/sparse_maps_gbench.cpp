// Google Benchmark target for the sparse probability maps at STanHop-Net's shapes (many short rows: 5-28 scores per
// query), forward and backward, float32: alpha-entmax (GSH) against sparsemax and softmax measured in the same run.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/autograd.h>

#include "outeffhop/sparse_maps.h"

namespace {

enum class Map { kSoftmax, kSparsemax, kEntmaxAlpha };

void sparse_map_forward_backward(benchmark::State& state, Map map) {
  const int64_t rows = 4096, cols = state.range(0);
  at::manual_seed(0);
  const auto x = at::randn({rows, cols}).requires_grad_();
  const auto alpha = at::full({rows, 1}, 1.5).requires_grad_();  // GSH's starting alpha, one per row
  const auto weight = at::randn({rows, cols});
  for (auto _ : state) {
    const auto p = map == Map::kSoftmax     ? at::softmax(x, -1)
                   : map == Map::kSparsemax ? outeffhop::sparsemax(x, -1)
                                            : outeffhop::entmax_bisect(x, alpha, -1);
    const auto inputs = map == Map::kEntmaxAlpha ? std::vector<at::Tensor>{x, alpha} : std::vector<at::Tensor>{x};
    benchmark::DoNotOptimize(torch::autograd::grad({(p * weight).sum()}, inputs));
  }
  state.counters["rows/s"] = benchmark::Counter(rows, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_CAPTURE(sparse_map_forward_backward, softmax, Map::kSoftmax)->Arg(5)->Arg(28)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sparse_map_forward_backward, sparsemax, Map::kSparsemax)
    ->Arg(5)->Arg(28)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sparse_map_forward_backward, entmax_alpha, Map::kEntmaxAlpha)
    ->Arg(5)->Arg(28)->Unit(benchmark::kMicrosecond);
