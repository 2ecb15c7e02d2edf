// `outeffhop bench attention`: the fused kernel against eager compositions, PyTorch's SDPA and the sgemm ceiling.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>

#include "bench/attention_compare.h"
#include "bench/retrieval_compare.h"
#include "commands.h"

namespace outeffhop::cli {
namespace {

struct BenchOptions {
  bench::AttentionBenchConfig config;
  std::string pass = "both";
  int threads = 0;
  bool json = false;
};

void print_table(const std::vector<bench::AttentionBenchRow>& rows, double sgemm) {
  std::map<std::tuple<int64_t, int64_t, std::string>, double> fused_ms;
  for (const auto& r : rows)
    if (r.impl == bench::impl_name(bench::AttentionImpl::kFused)) fused_ms[{r.batch, r.length, r.pass}] = r.ms;
  std::printf("%3s %5s %-17s %-23s %10s %9s %13s %8s %9s\n", "B", "L", "pass", "implementation", "ms", "GFLOP/s",
              "fused_speedup", "of_sgemm", "peak_MB");
  for (const auto& r : rows) {
    if (r.skipped) {
      std::printf("%3ld %5ld %-17s %-23s %10s  (skipped: scores exceed --max-scores-gb)\n", r.batch, r.length,
                  r.pass.c_str(), r.impl.c_str(), "-");
      continue;
    }
    const double speedup = r.ms / fused_ms[{r.batch, r.length, r.pass}];
    std::printf("%3ld %5ld %-17s %-23s %10.2f %9.1f %12.2fx %7.0f%% %9.1f\n", r.batch, r.length, r.pass.c_str(),
                r.impl.c_str(), r.ms, r.gflops, speedup, 100 * r.gflops / sgemm, r.peak_mb);
  }
}

void run_bench_attention(BenchOptions o) {
  if (o.threads > 0) at::set_num_threads(o.threads);
  TORCH_CHECK(o.pass == "forward" || o.pass == "backward" || o.pass == "both",
              "--pass must be forward, backward or both, got ", o.pass);
  o.config.forward = o.pass != "backward";
  o.config.backward = o.pass != "forward";
  for (const auto L : o.config.lengths) TORCH_CHECK(L >= 1, "--lengths must be >= 1, got ", L);
  for (const auto B : o.config.batches) TORCH_CHECK(B >= 1, "--batches must be >= 1, got ", B);
  std::cerr << "threads " << at::get_num_threads() << "; measuring the sgemm ceiling...\n";
  const double sgemm_before = bench::measure_sgemm_gflops();
  const auto rows = bench::compare_attention(o.config, [](const std::string& line) { std::cerr << line << "\n"; });
  // Measured before and after the sweep; the ceiling is the better of the two (a shared machine has slow moments).
  const double sgemm = std::max(sgemm_before, bench::measure_sgemm_gflops());
  std::cerr << "sgemm 2048^3: " << sgemm_before << " GFLOP/s before, ceiling " << sgemm << "\n";
  if (!o.json) {
    std::printf("attention benchmark: H=%ld D=%ld %s, float32, %d threads; sgemm ceiling %.1f GFLOP/s\n",
                o.config.heads, o.config.head_dim, o.config.causal ? "causal" : "non-causal", at::get_num_threads(),
                sgemm);
    print_table(rows, sgemm);
    return;
  }
  nlohmann::json results = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json j = {{"batch", r.batch}, {"length", r.length}, {"pass", r.pass}, {"impl", r.impl},
                        {"skipped", r.skipped}};
    if (!r.skipped) j.update({{"ms", r.ms}, {"gflops", r.gflops}, {"sgemm_fraction", r.gflops / sgemm},
                              {"peak_mb", r.peak_mb}});
    results.push_back(j);
  }
  const nlohmann::json out = {{"benchmark", "attention"},
                              {"heads", o.config.heads},
                              {"head_dim", o.config.head_dim},
                              {"causal", o.config.causal},
                              {"threads", at::get_num_threads()},
                              {"sgemm_gflops", sgemm},
                              {"results", results}};
  std::cout << out.dump() << "\n";
}

struct RetrievalBenchOptions {
  std::vector<int64_t> dims = {784, 3072};
  int64_t memories = 10000, queries = 1024;
  std::vector<std::string> models = {"softmax", "softmax1", "sparsemax", "entmax15", "entmax-alpha", "poly10"};
  double min_seconds = 0.5;
  bool json = false;
};

void run_bench_retrieval(const RetrievalBenchOptions& o) {
  TORCH_CHECK(o.memories >= 1 && o.queries >= 1, "--memories and --queries must be >= 1");
  const double sgemm = bench::measure_sgemm_gflops();
  const auto rows = bench::compare_retrieval(o.dims, o.memories, o.queries, o.models, o.min_seconds);
  if (o.json) {
    nlohmann::json results = nlohmann::json::array();
    for (const auto& r : rows)
      results.push_back({{"dim", r.dim}, {"memories", r.memories}, {"queries", r.queries}, {"model", r.model},
                         {"ms", r.ms}, {"queries_per_s", r.queries_per_s}, {"gflops", r.gflops},
                         {"sgemm_fraction", r.gflops / sgemm}});
    std::cout << nlohmann::json{{"benchmark", "retrieval"}, {"threads", at::get_num_threads()},
                                {"sgemm_gflops", sgemm}, {"results", results}}
                     .dump()
              << "\n";
    return;
  }
  std::printf("retrieval benchmark: one UHop update of %ld queries against %ld memories, float32, %d threads; "
              "sgemm ceiling %.1f GFLOP/s\n",
              o.queries, o.memories, at::get_num_threads(), sgemm);
  std::printf("%6s %-14s %10s %12s %9s %9s\n", "d", "model", "ms", "queries/s", "GFLOP/s", "of_sgemm");
  for (const auto& r : rows)
    std::printf("%6ld %-14s %10.2f %12.0f %9.1f %8.0f%%\n", r.dim, r.model.c_str(), r.ms, r.queries_per_s, r.gflops,
                100 * r.gflops / sgemm);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* bench_cmd = app.add_subcommand("bench", "Benchmarks (ratios against peers measured in the same run)");
  bench_cmd->require_subcommand(1);
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = bench_cmd->add_subcommand(
      "attention", "Fused softmax_1 attention vs eager softmax_1 / softmax, PyTorch SDPA (vanilla and zero-key "
                   "softmax_1) and the sgemm ceiling: GFLOP/s, speedups, peak memory");
  cmd->add_option("--batches", o->config.batches, "Batch sizes B")->delimiter(',')->capture_default_str();
  cmd->add_option("--lengths", o->config.lengths, "Sequence lengths L (Lq = Lk)")->delimiter(',')->capture_default_str();
  cmd->add_option("--heads", o->config.heads, "Heads H")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--head-dim", o->config.head_dim, "Head dimension D")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_flag("--causal", o->config.causal, "Causal attention (FLOPs counted as half)");
  cmd->add_option("--pass", o->pass, "forward, backward (forward+backward) or both")->capture_default_str();
  cmd->add_option("--min-time", o->config.min_seconds, "Seconds to repeat each measurement")->capture_default_str();
  cmd->add_option("--max-scores-gb", o->config.max_scores_gb,
                  "Skip eager peers whose L x L scores would exceed this many GB")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Intra-op threads (0 = LibTorch's default)")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print one JSON object instead of the table");
  cmd->callback([o] { run_bench_attention(*o); });

  auto r = std::make_shared<RetrievalBenchOptions>();
  auto* retrieval = bench_cmd->add_subcommand(
      "retrieval", "Associative-memory retrieval throughput (queries/s) per separation against the sgemm ceiling");
  retrieval->add_option("--dims", r->dims, "Pattern dimensions d")->delimiter(',')->capture_default_str();
  retrieval->add_option("--memories", r->memories, "Stored patterns M")->capture_default_str();
  retrieval->add_option("--queries", r->queries, "Queries per batch")->capture_default_str();
  retrieval->add_option("--models", r->models, "Separations (as in `memory`)")->delimiter(',')->capture_default_str();
  retrieval->add_option("--min-time", r->min_seconds, "Seconds to repeat each measurement")->capture_default_str();
  retrieval->add_flag("--json", r->json, "Print one JSON object instead of the table");
  retrieval->callback([r] { run_bench_retrieval(*r); });
}

}  // namespace outeffhop::cli
