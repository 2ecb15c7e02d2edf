// Retrieval throughput: one UHop update x <- X^T sep(X x) for a batch of queries, per separation, as queries/s and
// GFLOP/s (4 B M d per update) against the sgemm ceiling measured in the same run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace outeffhop::bench {

struct RetrievalBenchRow {
  int64_t dim = 0, memories = 0, queries = 0;
  std::string model;
  double ms = 0;              // median per batch
  double queries_per_s = 0;
  double gflops = 0;
};

std::vector<RetrievalBenchRow> compare_retrieval(const std::vector<int64_t>& dims, int64_t memories, int64_t queries,
                                                 const std::vector<std::string>& models, double min_seconds);

}  // namespace outeffhop::bench
