// `outeffhop bench attention`: the fused kernel against eager compositions, PyTorch's SDPA and the sgemm ceiling.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/nn/functional/linear.h>
#include <torch/nn/modules/linear.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>

#include "bench/attention_compare.h"
#include "bench/retrieval_compare.h"
#include "bench/timing.h"
#include "commands.h"
#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/outliers.h"
#include "outeffhop/parse_number.h"

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
  for (const auto d : o.dims) TORCH_CHECK(d >= 1, "--dims must be >= 1, got ", d);
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

struct Int8BenchOptions {
  int64_t tokens = 2048;
  std::vector<std::string> shapes = {"768x768", "768x3072", "3072x768"};
  double min_seconds = 0.3;
  int threads = 0;
  bool json = false;
};

// "768x3072" as (in, out); both positive integers, or an error naming the shape.
std::pair<int64_t, int64_t> linear_shape(const std::string& shape) {
  const auto x_at = shape.find('x');
  auto dim = [&](const std::string& text) {
    const auto d = parse_int(text);
    TORCH_CHECK(x_at != std::string::npos && d && *d > 0,
                "bench int8: shapes are IN x OUT with positive sizes, like 768x3072; got '", shape, "'");
    return *d;
  };
  return {dim(shape.substr(0, x_at)), dim(shape.substr(x_at + 1))};  // braced: in order, so no 'x' throws first
}

// Real INT8 Linear (quantize input, int8 GEMM, requantize, dequantize) against the float32 Linear on the same input,
// and against the simulated W8A8 result in output quantization steps.
void run_bench_int8(const Int8BenchOptions& o) {
  if (o.threads > 0) at::set_num_threads(o.threads);
  torch::NoGradGuard no_grad;
  nlohmann::json results = nlohmann::json::array();
  std::printf("INT8 Linear (LibTorch quantized engine '%s') vs float32, %ld tokens, %d threads\n",
              analysis::exact_quantized_engine().c_str(), o.tokens, at::get_num_threads());
  std::printf("%-10s %10s %10s %8s %12s %12s %14s\n", "in x out", "fp32 ms", "int8 ms", "speedup", "fp32 MB",
              "int8 MB", "max |int8-sim|");
  for (const auto& shape : o.shapes) {
    const auto [in, out] = linear_shape(shape);
    at::manual_seed(0);
    torch::nn::Linear linear(in, out);
    const auto x = at::randn({o.tokens, in});
    const auto y = linear->forward(x);
    const std::pair<double, double> in_range{x.min().item<double>(), x.max().item<double>()};
    const auto y_sim_float = torch::nn::functional::linear(fake_quant_asym(x, in_range.first, in_range.second),
                                                           fake_quant_sym(linear->weight), linear->bias);
    const std::pair<double, double> out_range{y_sim_float.min().item<double>(), y_sim_float.max().item<double>()};
    const auto y_sim = fake_quant_asym(y_sim_float, out_range.first, out_range.second);
    analysis::Int8Linear int8(linear, in_range, out_range);
    const double steps = (int8.forward(x) - y_sim).abs().max().item<double>() /
                         asym_quant_params(out_range.first, out_range.second).delta;
    const double fp32_ms = 1e3 * bench::median_seconds([&] { linear->forward(x); }, o.min_seconds);
    const double int8_ms = 1e3 * bench::median_seconds([&] { int8.forward(x); }, o.min_seconds);
    const double fp32_mb = in * out * 4 / 1e6, int8_mb = int8.packed_weight_bytes() / 1e6;
    std::printf("%-10s %10.3f %10.3f %7.2fx %12.2f %12.2f %11.2f steps\n", shape.c_str(), fp32_ms, int8_ms,
                fp32_ms / int8_ms, fp32_mb, int8_mb, steps);
    results.push_back({{"shape", shape}, {"fp32_ms", fp32_ms}, {"int8_ms", int8_ms}, {"fp32_weight_mb", fp32_mb},
                       {"int8_weight_mb", int8_mb}, {"max_diff_vs_simulated_steps", steps}});
  }
  if (o.json)
    std::cout << nlohmann::json{{"benchmark", "int8"}, {"engine", analysis::current_quantized_engine()},
                                {"engines", analysis::quantized_engines()}, {"tokens", o.tokens},
                                {"threads", at::get_num_threads()}, {"results", results}}
                     .dump()
              << "\n";
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* bench_cmd = app.add_subcommand("bench", "Benchmarks (ratios against peers measured in the same run)");
  bench_cmd->require_subcommand(1);
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = bench_cmd->add_subcommand(
      "attention", "Fused softmax_1 attention vs eager softmax_1 / softmax, PyTorch SDPA (vanilla and zero-key "
                   "softmax_1), fused and eager clipped softmax_1, and the sgemm ceiling: GFLOP/s, speedups, peak "
                   "memory");
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

  auto q = std::make_shared<Int8BenchOptions>();
  auto* int8 = bench_cmd->add_subcommand(
      "int8", "Real INT8 Linear (LibTorch's quantized engine) vs float32: latency, weight memory, and agreement with "
              "the simulated W8A8 path");
  int8->add_option("--tokens", q->tokens, "Rows of the input")->check(CLI::PositiveNumber)->capture_default_str();
  int8->add_option("--shapes", q->shapes, "IN x OUT of each Linear")->delimiter(',')->capture_default_str();
  int8->add_option("--min-time", q->min_seconds, "Seconds to repeat each measurement")->capture_default_str();
  int8->add_option("--threads", q->threads, "Intra-op threads (0 = LibTorch's default)")->capture_default_str();
  int8->add_flag("--json", q->json, "Also print one JSON object");
  int8->callback([q] { run_bench_int8(*q); });
}

}  // namespace outeffhop::cli
