// `outeffhop lm`: the OPT outlier experiment at CPU scale. For each attention variant and seed: train a byte-level
// OPT-style decoder on the books, track the outlier statistics during training, then evaluate on WikiText-2 (valid)
// in FP32, emulated FP16 and BF16, and simulated W8A8, and print the paper's Table 1 columns (perplexity per byte,
// avg kurtosis, max inf-norm) with the KL divergence and top-1 agreement of each reduced precision against FP32.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "commands.h"
#include "analysis/mean_std.h"
#include "plot.h"
#include "bench/timing.h"
#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/analysis/outlier_points.h"
#include "outeffhop/analysis/precision.h"
#include "outeffhop/analysis/w8a8.h"
#include "outeffhop/data.h"
#include "outeffhop/models/opt.h"
#include "outeffhop/safetensors.h"
#include "outeffhop/train.h"

namespace outeffhop::cli {
namespace {

struct LmOptions {
  std::string data_dir = "../shared/data";
  std::vector<std::string> variants = {"softmax", "softmax1"};
  std::vector<int64_t> seeds = {0};
  models::OptConfig model;
  train::TrainOptions train;
  int64_t batch = 16, seq = 128;
  int64_t eval_batches = 8, calibration_batches = 4, track_every = 50, log_every = 25;
  std::string out;
  bool json = false;
  bool eager_attention = false;  // train through the materialised composite instead of the fused kernel (for timing)
  bool bos = true;               // a BOS token first in every sequence (vocabulary 257)
  std::string checkpoint;        // evaluate this saved model instead of training
  std::vector<std::string> w8a8_keep_float;  // activation points (name suffixes) W8A8 leaves in float
};

constexpr int64_t kBos = 256;  // the beginning-of-sequence token after the 256 byte values

// Rows of seq + 1 tokens (seq model positions plus the last target): bytes, or with a BOS token first (as OPT
// prepends </s>) and seq bytes after it. Random starts for training, consecutive windows for evaluation.
at::Tensor with_bos(const at::Tensor& rows, bool bos) {
  return bos ? at::cat({at::full({rows.size(0), 1}, kBos, rows.options()), rows}, 1) : rows;
}

at::Tensor random_windows(const at::Tensor& tokens, int64_t batch, int64_t seq, bool bos, at::Generator& gen) {
  const int64_t len = seq + 1 - (bos ? 1 : 0);
  const auto starts = at::randint(tokens.size(0) - len, {batch}, gen);
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t s = starts[i].item<int64_t>();
    rows.push_back(tokens.slice(0, s, s + len));
  }
  return with_bos(at::stack(rows), bos);
}

std::vector<at::Tensor> consecutive_batches(const at::Tensor& tokens, int64_t batches, int64_t batch, int64_t seq,
                                            bool bos) {
  const int64_t window = seq + 1 - (bos ? 1 : 0), available = tokens.size(0) / window;
  TORCH_CHECK(available >= batch, "lm: the evaluation text holds ", available, " windows of ", window,
              " tokens, fewer than one batch of ", batch);
  std::vector<at::Tensor> out;
  for (int64_t b = 0; b < batches && (b + 1) * batch <= available; ++b)
    out.push_back(with_bos(tokens.slice(0, b * batch * window, (b + 1) * batch * window).view({batch, window}), bos));
  return out;
}

// One evaluation pass: mean next-token loss and, against reference logits, the KL divergence KL(ref || this) per
// token and how often both put their top-1 on the same token.
struct Eval {
  double loss = 0, kl = 0, same_top1 = 1;
};

Eval evaluate(models::OptForCausalLM& model, const std::vector<at::Tensor>& batches,
              const std::vector<at::Tensor>* reference, std::vector<at::Tensor>* logits_out = nullptr) {
  torch::NoGradGuard no_grad;
  model->eval();
  Eval e;
  e.same_top1 = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    const auto inputs = batches[i].slice(1, 0, -1), targets = batches[i].slice(1, 1);
    const auto log_p = at::log_softmax(model->forward(inputs), -1);
    e.loss += -log_p.gather(-1, targets.unsqueeze(-1)).mean().item<double>();
    if (reference) {
      const auto& ref = (*reference)[i];
      e.kl += (ref.exp() * (ref - log_p)).sum(-1).mean().item<double>();
      e.same_top1 += ref.argmax(-1).eq(log_p.argmax(-1)).to(at::kDouble).mean().item<double>();
    }
    if (logits_out) logits_out->push_back(log_p);
  }
  const double n = static_cast<double>(batches.size());
  e.loss /= n, e.kl /= n, e.same_top1 = reference ? e.same_top1 / n : 1;
  return e;
}

struct VariantResult {
  std::string variant;
  int64_t seed = 0;
  Eval fp32, fp16, bf16, w8a8, int8;  // int8: real INT8 Linears, the other points as in w8a8
  double fp32_forward_ms = 0, int8_forward_ms = 0;  // one forward pass of one evaluation batch
  // Per activation point: ||x_w8a8 - x_fp32|| / ||x_fp32|| on 4 evaluation sequences, where W8A8 reaches the point
  // (before that point's own quantizer): which layer breaks.
  std::vector<std::pair<std::string, double>> w8a8_point_errors;
  double train_seconds = 0;
  analysis::OutlierSummary outliers;
  std::vector<analysis::ModuleOutliers> modules;
};

// Every activation point's value on one input, in the order reached.
std::vector<std::pair<std::string, at::Tensor>> point_values(models::OptForCausalLM& model,
                                                             const nn::ActivationPointsPtr& points,
                                                             const at::Tensor& input) {
  std::vector<std::pair<std::string, at::Tensor>> values;
  points->add_observer([&](const std::string& name, const at::Tensor& x) { values.emplace_back(name, x.clone()); });
  {
    torch::NoGradGuard no_grad;
    model->eval();
    model->forward(input);
  }
  points->clear_observers();
  return values;
}

std::vector<std::pair<std::string, double>> point_errors(
    models::OptForCausalLM& model, const nn::ActivationPointsPtr& points, const at::Tensor& input,
    const std::vector<std::pair<std::string, at::Tensor>>& reference) {
  std::map<std::string, at::Tensor> ref(reference.begin(), reference.end());
  std::vector<std::pair<std::string, double>> errors;
  for (const auto& [name, x] : point_values(model, points, input)) {
    const auto r = ref.find(name);
    if (r == ref.end()) continue;  // points only the quantized (eager) attention reaches
    const double norm = r->second.norm().item<double>();
    errors.emplace_back(name, norm > 0 ? (x - r->second).norm().item<double>() / norm : 0.0);
  }
  return errors;
}

void evaluate_variant(const LmOptions& o, models::OptForCausalLM& model, const nn::ActivationPointsPtr& points,
                      const at::Tensor& train_tokens, const std::vector<at::Tensor>& eval_batches, at::Generator& gen,
                      VariantResult& result);

// Trains one variant with one seed (tracking the outlier statistics), then evaluates it.
VariantResult run_variant(const LmOptions& o, const std::string& variant, int64_t seed, const at::Tensor& train_tokens,
                          const std::vector<at::Tensor>& eval_batches, std::ofstream* jsonl) {
  at::manual_seed(seed);
  auto config = o.model;
  config.variant = nn::parse_attention_variant(variant);
  config.vocab_size = 256 + (o.bos ? 1 : 0);
  config.max_positions = std::max(config.max_positions, o.seq);
  models::OptForCausalLM model(config);
  auto points = std::make_shared<nn::ActivationPoints>();
  model->set_activation_points(points);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed) + 1000);

  // Outlier statistics on the first evaluation batch every track_every steps: the paper's Figure 2 over training.
  auto track = [&](int64_t step, double loss) {
    analysis::OutlierStats stats;
    points->add_observer(analysis::outlier_observer(stats, analysis::opt_outlier_rows));
    {
      torch::NoGradGuard no_grad;
      model->eval();
      model->forward(eval_batches.front().slice(1, 0, -1));
      model->train();
    }
    points->clear_observers();
    const auto s = stats.summary();
    if (jsonl)
      *jsonl << nlohmann::json{{"variant", variant}, {"seed", seed}, {"step", step}, {"loss", loss},
                               {"avg_kurtosis", s.avg_kurtosis}, {"max_inf_norm", s.max_inf_norm}}
                    .dump()
             << std::endl;  // flushed: a long run's curve survives an interruption
    return s;
  };

  // An identity transform on the points makes every attention materialise its probabilities: the eager composite.
  if (o.eager_attention) points->set_transform([](const std::string&, const at::Tensor& x) { return x; });
  auto optimizer = train::make_adamw(*model, o.train);
  const auto start = std::chrono::steady_clock::now();
  train::train(
      *model, *optimizer, o.train,
      [&](int64_t) { return model->loss(random_windows(train_tokens, o.batch, o.seq, o.bos, gen)); },
      [&](const train::StepReport& r) {
        const bool last = r.step == o.train.steps;
        if (o.track_every > 0 && (r.step % o.track_every == 0 || last)) track(r.step, r.loss);
        if (r.step % o.log_every == 0 || last) {
          const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          const double rate = r.step / elapsed;
          std::fprintf(stderr,
                       "[%s seed %lld] step %lld/%lld  loss %.3f  lr %.2e  %.2f steps/s  %.0f tokens/s  eta %.0fs\n",
                       variant.c_str(), static_cast<long long>(seed), static_cast<long long>(r.step),
                       static_cast<long long>(o.train.steps), r.loss, r.lr, rate, rate * o.batch * o.seq,
                       (o.train.steps - r.step) / rate);
        }
      });
  VariantResult result;
  result.variant = variant, result.seed = seed;
  result.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  points->set_transform(nullptr);
  if (!o.out.empty()) {  // the trained model, to evaluate again without retraining
    const auto path = o.out + "/" + variant + "-seed" + std::to_string(seed) + ".safetensors";
    save_module(path, *model, {{"variant", variant}, {"seed", std::to_string(seed)}, {"bos", o.bos ? "1" : "0"},
                               {"vocab_size", std::to_string(config.vocab_size)},
                               {"d_model", std::to_string(config.d_model)},
                               {"num_layers", std::to_string(config.num_layers)},
                               {"num_heads", std::to_string(config.num_heads)}, {"d_ff", std::to_string(config.d_ff)},
                               {"max_positions", std::to_string(config.max_positions)}});
  }
  evaluate_variant(o, model, points, train_tokens, eval_batches, gen, result);
  return result;
}

// FP32 (with the outlier statistics), emulated FP16 and BF16, and simulated W8A8 of a trained model.
void evaluate_variant(const LmOptions& o, models::OptForCausalLM& model, const nn::ActivationPointsPtr& points,
                      const at::Tensor& train_tokens, const std::vector<at::Tensor>& eval_batches, at::Generator& gen,
                      VariantResult& result) {
  const auto probe = eval_batches.front().slice(0, 0, 4).slice(1, 0, -1);
  const auto fp32_points = point_values(model, points, probe);
  analysis::OutlierStats stats;
  points->add_observer(analysis::outlier_observer(stats, analysis::opt_outlier_rows));
  std::vector<at::Tensor> reference;
  result.fp32 = evaluate(model, eval_batches, nullptr, &reference);
  points->clear_observers();
  result.outliers = stats.summary();
  result.modules = stats.modules();
  {
    analysis::HalfPrecisionEmulation half(*model, points, at::kHalf);
    result.fp16 = evaluate(model, eval_batches, &reference);
  }
  {
    analysis::HalfPrecisionEmulation half(*model, points, at::kBFloat16);
    result.bf16 = evaluate(model, eval_batches, &reference);
  }

  // W8A8: ranges from training batches with the 0.001/99.999 percentiles (the paper's OPT protocol), then frozen.
  analysis::W8A8Options q;
  q.ranges.method = analysis::RangeMethod::kPercentile;
  q.ranges.percentile = 99.999;
  q.keep_float = [&o](const std::string& name) {
    for (const auto& suffix : o.w8a8_keep_float)
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
    return false;
  };
  const auto params = model->named_parameters();
  analysis::W8A8Simulation sim(*model, points,
                               {{"model.decoder.embed_tokens", params["model.decoder.embed_tokens.weight"]},
                                {"model.decoder.embed_positions", params["model.decoder.embed_positions.weight"]}},
                               q);
  sim.start_calibration();
  {
    torch::NoGradGuard no_grad;
    model->eval();
    for (int64_t i = 0; i < o.calibration_batches; ++i)
      model->forward(random_windows(train_tokens, o.batch, o.seq, o.bos, gen).slice(1, 0, -1));
  }
  sim.quantize();
  result.w8a8 = evaluate(model, eval_batches, &reference);
  result.w8a8_point_errors = point_errors(model, points, probe, fp32_points);
  const auto ranges = sim.ranges();
  {  // real INT8 Linears (LibTorch's quantized engine) with the same ranges: agreement with the simulation
    const analysis::Int8Linears int8(*model, ranges, analysis::opt_linear_input_point);
    int8.attach(*points);
    result.int8 = evaluate(model, eval_batches, &reference);
    points->set_linear_override(nullptr);
  }
  sim.restore();

  // Latency of one forward pass: float32 vs the same model with real INT8 Linears and nothing else quantized.
  torch::NoGradGuard no_grad;
  model->eval();
  const auto batch = eval_batches.front().slice(1, 0, -1);
  result.fp32_forward_ms = 1e3 * bench::median_seconds([&] { model->forward(batch); }, 1.0);
  const analysis::Int8Linears int8(*model, ranges, analysis::opt_linear_input_point);
  int8.attach(*points);
  result.int8_forward_ms = 1e3 * bench::median_seconds([&] { model->forward(batch); }, 1.0);
  points->set_linear_override(nullptr);
}

// An OPT saved by `lm --out` (or any safetensors file with Hugging Face OPT names and this metadata: variant, d_model,
// num_layers, num_heads, d_ff, max_positions, and vocab_size or bos), rebuilt and loaded.
struct SavedOpt {
  models::OptForCausalLM model{nullptr};
  std::map<std::string, std::string> metadata;
};

SavedOpt load_saved_opt(const std::string& path, const models::OptConfig& defaults) {
  SavedOpt saved;
  saved.metadata = load_safetensors(path).metadata;
  auto get = [&](const std::string& key) {
    const auto it = saved.metadata.find(key);
    TORCH_CHECK(it != saved.metadata.end(), path, ": no '", key, "' in the metadata (not written by `outeffhop lm`)");
    return it->second;
  };
  auto config = defaults;
  config.variant = nn::parse_attention_variant(get("variant"));
  config.vocab_size = saved.metadata.count("vocab_size") ? std::stoll(get("vocab_size")) : 256 + (get("bos") == "1");
  config.d_model = std::stoll(get("d_model")), config.num_layers = std::stoll(get("num_layers"));
  config.num_heads = std::stoll(get("num_heads")), config.d_ff = std::stoll(get("d_ff"));
  config.max_positions = std::stoll(get("max_positions"));
  saved.model = models::OptForCausalLM(config);
  load_module(path, *saved.model);
  return saved;
}

// A saved model (VARIANT-seedK.safetensors from --out) evaluated like a freshly trained one.
VariantResult evaluate_checkpoint(const LmOptions& o, const at::Tensor& train_tokens,
                                  const std::vector<at::Tensor>& eval_batches) {
  auto saved = load_saved_opt(o.checkpoint, o.model);
  const auto& meta = saved.metadata;
  const bool bos = meta.count("bos") && meta.at("bos") == "1";
  TORCH_CHECK(bos == o.bos, o.checkpoint, ": the model was trained ", bos ? "with" : "without", " a BOS token; pass ",
              bos ? "--bos" : "--no-bos");
  auto points = std::make_shared<nn::ActivationPoints>();
  saved.model->set_activation_points(points);
  VariantResult result;
  result.variant = meta.at("variant"), result.seed = meta.count("seed") ? std::stoll(meta.at("seed")) : 0;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(result.seed) + 2000);
  evaluate_variant(o, saved.model, points, train_tokens, eval_batches, gen, result);
  return result;
}

std::string table(const std::vector<VariantResult>& results, const std::vector<std::string>& variants) {
  std::ostringstream md;
  md << "| variant | FP32 ppl | FP16 ppl | BF16 ppl | W8A8 ppl | W8A8 KL (mnats/token) | W8A8 same top-1 | "
        "INT8 ppl | INT8 forward speedup | avg kurtosis | max inf-norm | seeds |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  char buf[96];
  auto cell = [&](const std::vector<double>& v, const char* format) {
    const auto m = analysis::mean_std(v);
    std::snprintf(buf, sizeof buf, format, m.mean, m.std);
    return std::string(buf);
  };
  for (const auto& v : variants) {
    std::vector<double> fp32, fp16, bf16, w8a8, kl, top1, int8, speedup, kurt, inf;
    for (const auto& r : results) {
      if (r.variant != v) continue;
      fp32.push_back(std::exp(r.fp32.loss)), fp16.push_back(std::exp(r.fp16.loss));
      bf16.push_back(std::exp(r.bf16.loss)), w8a8.push_back(std::exp(r.w8a8.loss));
      kl.push_back(1e3 * r.w8a8.kl), top1.push_back(100 * r.w8a8.same_top1);
      int8.push_back(std::exp(r.int8.loss)), speedup.push_back(r.fp32_forward_ms / r.int8_forward_ms);
      kurt.push_back(r.outliers.avg_kurtosis), inf.push_back(r.outliers.max_inf_norm);
    }
    md << "| " << v << " | " << cell(fp32, "%.4f ± %.4f") << " | " << cell(fp16, "%.4f ± %.4f") << " | "
       << cell(bf16, "%.4f ± %.4f") << " | " << cell(w8a8, "%.4f ± %.4f") << " | " << cell(kl, "%.3f ± %.3f")
       << " | " << cell(top1, "%.2f%% ± %.2f") << " | " << cell(int8, "%.4f ± %.4f") << " | "
       << cell(speedup, "%.2fx ± %.2f") << " | " << cell(kurt, "%.2f ± %.2f") << " | "
       << cell(inf, "%.2f ± %.2f") << " | " << fp32.size() << " |\n";
  }
  return md.str();
}

void run(const LmOptions& o) {
  const auto books = o.data_dir + "/text/books";
  const auto valid = o.data_dir + "/text/wikitext2_valid.txt";
  std::fprintf(stderr, "reading %s and %s\n", books.c_str(), valid.c_str());
  const auto train_tokens = data::byte_tokens(data::read_books(books));
  const auto eval_batches =
      consecutive_batches(data::byte_tokens(data::read_text_file(valid)), o.eval_batches, o.batch, o.seq, o.bos);
  std::fprintf(stderr, "train: %lld bytes; eval: %zu batches of %lld x %lld bytes\n",
               static_cast<long long>(train_tokens.size(0)), eval_batches.size(), static_cast<long long>(o.batch),
               static_cast<long long>(o.seq + 1));
  std::unique_ptr<std::ofstream> jsonl;
  if (!o.out.empty()) {
    std::filesystem::create_directories(o.out);
    jsonl = std::make_unique<std::ofstream>(o.out + "/tracking.jsonl");
  }
  std::vector<VariantResult> results;
  auto variants = o.variants;
  if (!o.checkpoint.empty()) {
    results.push_back(evaluate_checkpoint(o, train_tokens, eval_batches));
    variants = {results.back().variant};
  } else {
    for (const auto& v : o.variants)
      for (const auto seed : o.seeds)
        results.push_back(run_variant(o, v, seed, train_tokens, eval_batches, jsonl.get()));
  }

  const auto md = table(results, variants);
  std::cout << md;
  for (const auto& r : results) {
    auto worst = r.w8a8_point_errors;
    std::sort(worst.begin(), worst.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::fprintf(stderr, "[%s seed %lld] largest W8A8 relative errors:", r.variant.c_str(),
                 static_cast<long long>(r.seed));
    for (size_t i = 0; i < std::min<size_t>(3, worst.size()); ++i)
      std::fprintf(stderr, "  %s %.3f", worst[i].first.c_str(), worst[i].second);
    std::fprintf(stderr, "\n");
  }
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json modules = nlohmann::json::array();
    for (const auto& m : r.modules)
      modules.push_back({{"module", m.module}, {"kurtosis", m.mean_kurtosis}, {"inf_norm", m.mean_inf_norm},
                         {"max_row_inf_norm", m.max_inf_norm}});
    auto eval = [](const Eval& e) {
      return nlohmann::json{{"loss", e.loss}, {"kl", e.kl}, {"same_top1", e.same_top1}};
    };
    nlohmann::json errors = nlohmann::json::array();
    for (const auto& [name, e] : r.w8a8_point_errors) errors.push_back({{"point", name}, {"relative_error", e}});
    runs.push_back({{"variant", r.variant}, {"seed", r.seed}, {"fp32", eval(r.fp32)}, {"fp16", eval(r.fp16)},
                    {"bf16", eval(r.bf16)}, {"w8a8", eval(r.w8a8)}, {"int8", eval(r.int8)},
                    {"fp32_forward_ms", r.fp32_forward_ms}, {"int8_forward_ms", r.int8_forward_ms},
                    {"avg_kurtosis", r.outliers.avg_kurtosis},
                    {"max_inf_norm", r.outliers.max_inf_norm}, {"train_seconds", r.train_seconds},
                    {"modules", modules}, {"w8a8_point_errors", errors}});
  }
  if (o.json) std::cout << runs.dump(1) << "\n";
  if (!o.out.empty()) {
    std::ofstream(o.out + "/table.md") << md;
    std::ofstream(o.out + "/runs.json") << runs.dump(1) << "\n";
    jsonl->flush();
    const auto title = "byte-level OPT, " + std::to_string(o.model.num_layers) + " layers, d = " +
                       std::to_string(o.model.d_model);
    const bool plotted = o.track_every > 0 && o.checkpoint.empty() &&
                         run_plot("tracking", o.out + "/tracking.jsonl", o.out + "/tracking.png", title);
    std::fprintf(stderr, "wrote %s/{table.md,runs.json,tracking.jsonl%s}\n", o.out.c_str(),
                 plotted ? ",tracking.png" : "");
  }
}

}  // namespace

void add_lm_logits(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto ids = std::make_shared<std::vector<int64_t>>();
  auto* cmd = app.add_subcommand("lm-logits", "print, as JSON, the next-token logits of a saved OPT for one sequence "
                                              "of token ids (for comparisons with other implementations)");
  cmd->add_option("--checkpoint", *path, "safetensors file with OPT names and lm metadata")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--ids", *ids, "token ids")->required()->delimiter(',');
  cmd->callback([path, ids] {
    auto saved = load_saved_opt(*path, models::OptConfig{});
    torch::NoGradGuard no_grad;
    saved.model->eval();
    const auto input = at::tensor(*ids, at::kLong).view({1, -1});
    const auto logits = saved.model->forward(input)[0].to(at::kDouble).contiguous();
    std::vector<std::vector<double>> rows;
    for (int64_t t = 0; t < logits.size(0); ++t) {
      const auto* row = logits[t].data_ptr<double>();
      rows.emplace_back(row, row + logits.size(1));
    }
    std::cout << nlohmann::json{{"logits", rows}}.dump() << "\n";
  });
}

void add_lm(CLI::App& app) {
  auto o = std::make_shared<LmOptions>();
  auto* cmd = app.add_subcommand(
      "lm", "train byte-level OPT-style decoders on the books per attention variant; FP32 and W8A8 perplexity on "
            "WikiText-2 valid, avg kurtosis and max inf-norm (the paper's Table 1 for OPT, at CPU scale)");
  cmd->add_option("--data-dir", o->data_dir, "the shared data directory (text/books, text/wikitext2_valid.txt)")
      ->capture_default_str();
  cmd->add_option("--variants", o->variants, "attention variants (see `outeffhop info`)")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--seeds", o->seeds, "seeds")->delimiter(',')->capture_default_str();
  cmd->add_option("--steps", o->train.steps, "training steps")->capture_default_str();
  cmd->add_option("--d-model", o->model.d_model)->capture_default_str();
  cmd->add_option("--layers", o->model.num_layers)->capture_default_str();
  cmd->add_option("--heads", o->model.num_heads)->capture_default_str();
  cmd->add_option("--d-ff", o->model.d_ff)->capture_default_str();
  cmd->add_option("--dropout", o->model.dropout)->capture_default_str();
  cmd->add_option("--init-std", o->model.init_std)->capture_default_str();
  cmd->add_option("--seq", o->seq, "tokens (bytes) per sequence")->capture_default_str();
  cmd->add_option("--batch", o->batch)->capture_default_str();
  cmd->add_option("--lr", o->train.lr)->capture_default_str();
  cmd->add_option("--weight-decay", o->train.weight_decay)->capture_default_str();
  cmd->add_option("--warmup", o->train.warmup)->capture_default_str();
  cmd->add_option("--schedule", o->train.schedule, "linear, cosine or constant")->capture_default_str();
  cmd->add_option("--clip", o->train.clip, "max gradient norm (<= 0: off)")->capture_default_str();
  cmd->add_option("--eval-batches", o->eval_batches)->capture_default_str();
  cmd->add_option("--calibration-batches", o->calibration_batches)->capture_default_str();
  cmd->add_option("--track-every", o->track_every, "outlier statistics every K steps into tracking.jsonl (0: off)")
      ->capture_default_str();
  cmd->add_option("--log-every", o->log_every)->capture_default_str();
  cmd->add_option("--out", o->out,
                  "directory for table.md, runs.json, tracking.jsonl/.png and each trained model "
                  "(VARIANT-seedK.safetensors)");
  cmd->add_flag("--json", o->json, "also print every run as JSON");
  cmd->add_flag("--bos,!--no-bos", o->bos,
                "start every sequence with a BOS token (as OPT prepends </s>; default) or not (bytes only)")
      ->capture_default_str();
  cmd->add_option("--checkpoint", o->checkpoint,
                  "evaluate a model saved by `lm --out` (VARIANT-seedK.safetensors) instead of training")
      ->check(CLI::ExistingFile);
  cmd->add_option("--w8a8-keep-float", o->w8a8_keep_float,
                  "activation points (name suffixes, e.g. attn_scores,attn_probs) that W8A8 leaves in float")
      ->delimiter(',');
  cmd->add_flag("--eager-attention", o->eager_attention,
                "train with the materialised softmax_n composite instead of the fused kernel (throughput comparison)");
  cmd->callback([o] {
    TORCH_CHECK(o->seq >= 2 && o->batch >= 1 && o->eval_batches >= 1 && o->calibration_batches >= 1 &&
                    o->log_every >= 1,
                "lm: need --seq >= 2, --batch, --eval-batches, --calibration-batches, --log-every >= 1");
    run(*o);
  });
}

}  // namespace outeffhop::cli
