// Retrieval throughput harness (see retrieval_compare.h).
#include "retrieval_compare.h"

#include <ATen/ATen.h>

#include "outeffhop/memory_experiments.h"
#include "timing.h"

namespace outeffhop::bench {

std::vector<RetrievalBenchRow> compare_retrieval(const std::vector<int64_t>& dims, int64_t memories, int64_t queries,
                                                 const std::vector<std::string>& models, double min_seconds) {
  std::vector<RetrievalBenchRow> rows;
  for (const int64_t d : dims) {
    at::manual_seed(0);
    const auto X = at::rand({memories, d}), Z = at::rand({queries, d});
    memory::SeparationParams params;
    params.beta = 1.0 / d;  // logits of order 1: every separation does real work
    for (const auto& model : models) {
      const auto s = memory::parse_separation(model);
      RetrievalBenchRow row{d, memories, queries, model};
      row.ms = 1e3 * median_seconds([&] { memory::retrieve_uhop(X, Z, s, params, 1); }, min_seconds);
      row.queries_per_s = queries / (row.ms / 1e3);
      row.gflops = 4.0 * queries * memories * d / (row.ms / 1e3) / 1e9;
      rows.push_back(row);
    }
  }
  return rows;
}

}  // namespace outeffhop::bench
