// A trained model evaluated (see evaluation.h).
#include "outeffhop/experiment/evaluation.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>

#include "bench/timing.h"
#include "outeffhop/analysis/activation_peaks.h"
#include "outeffhop/analysis/attention_use.h"
#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/analysis/outlier_stats.h"
#include "outeffhop/analysis/precision.h"
#include "outeffhop/analysis/w8a8.h"

namespace outeffhop::experiment {

using nlohmann::json;

namespace {

// Every activation point's value on one input, in the order reached.
std::vector<std::pair<std::string, at::Tensor>> point_values(TaskModel& model, const nn::ActivationPointsPtr& points,
                                                             const at::Tensor& input) {
  std::vector<std::pair<std::string, at::Tensor>> values;
  points->add_observer([&](const std::string& name, const at::Tensor& x) { values.emplace_back(name, x.clone()); });
  {
    torch::NoGradGuard no_grad;
    model.module->eval();
    model.logits(input);
  }
  points->clear_observers();
  return values;
}

// ||x - x_ref|| / ||x_ref|| per point reached by both: where the reduced precision breaks; with each quantized
// point's calibrated range, so that a large error can be told from a wide range.
json point_errors(TaskModel& model, const nn::ActivationPointsPtr& points, const at::Tensor& input,
                  const std::vector<std::pair<std::string, at::Tensor>>& reference,
                  const std::vector<std::pair<std::string, std::pair<double, double>>>& ranges) {
  const std::map<std::string, at::Tensor> ref(reference.begin(), reference.end());
  const std::map<std::string, std::pair<double, double>> range_of(ranges.begin(), ranges.end());
  json errors = json::array();
  for (const auto& [name, x] : point_values(model, points, input)) {
    const auto r = ref.find(name);
    if (r == ref.end()) continue;
    const double norm = r->second.norm().item<double>();
    json e = {{"point", name},
              {"relative_error", norm > 0 ? (x - r->second).norm().item<double>() / norm : 0},
              {"rms", norm / std::sqrt(static_cast<double>(std::max<int64_t>(r->second.numel(), 1)))}};
    if (const auto q = range_of.find(name); q != range_of.end()) e["range"] = {q->second.first, q->second.second};
    errors.push_back(e);
  }
  return errors;
}

json outlier_json(const analysis::OutlierStats& stats) {
  const auto s = stats.summary();
  json modules = json::array(), layers = json::array();
  for (const auto& m : stats.modules())
    modules.push_back({{"module", m.module},
                       {"kurtosis", m.mean_kurtosis},
                       {"inf_norm", m.mean_inf_norm},
                       {"max_row_inf_norm", m.max_inf_norm}});
  for (const auto& [layer, l] : stats.per_layer())
    layers.push_back({{"layer", layer}, {"avg_kurtosis", l.avg_kurtosis}, {"max_inf_norm", l.max_inf_norm}});
  return {{"avg_kurtosis", s.avg_kurtosis}, {"max_inf_norm", s.max_inf_norm}, {"modules", modules}, {"layers", layers}};
}

// Attention mass per attention layer on the evaluation batches. The fused kernels never form the probabilities, so
// this FP32 pass runs the eager attention (an identity transform) with an observer on the `attn_probs` points (and
// the `attn_gates` of gated attention).
json attention_use_json(TaskModel& model, const nn::ActivationPointsPtr& points, const std::vector<Batch>& batches) {
  static const std::string probs = ".attn_probs", gates = ".attn_gates";
  analysis::AttentionUse use;
  points->add_observer([&](const std::string& name, const at::Tensor& x) {
    if (name.ends_with(probs)) use.add(name.substr(0, name.size() - probs.size()), x);
    if (name.ends_with(gates)) use.add_gates(name.substr(0, name.size() - gates.size()), x);
  });
  use_eager_attention(*points);
  {
    torch::NoGradGuard no_grad;
    model.module->eval();
    for (const auto& batch : batches) model.logits(batch.input);
  }
  points->set_transform(nullptr);
  points->clear_observers();
  json out = json::array();
  for (const auto& a : use.points()) {
    json j = {{"point", a.point},
              {"rows", a.rows},
              {"mean_mass", a.mean_mass},
              {"low_mass_share", a.low_mass_share},
              {"first_key_mass", a.first_key_mass}};
    if (a.spread_rows > 0) j["mean_entropy"] = a.mean_entropy;
    if (a.gates > 0) j.update({{"mean_gate", a.mean_gate}, {"low_gate_share", a.low_gate_share}});
    out.push_back(j);
  }
  return out;
}

// The activation peaks as JSON, each with the input token at its place where the input holds token ids (B x T, or
// BERT's B x 3|4 x T whose first row is the ids).
json peaks_json(const analysis::ActivationPeaks& peaks, const std::vector<Batch>& batches) {
  auto token_at = [&](int64_t sample, int64_t position) -> std::optional<int64_t> {
    for (const auto& b : batches) {
      const int64_t rows = b.input.size(0);
      if (sample >= rows) {
        sample -= rows;
        continue;
      }
      if (at::isFloatingType(b.input.scalar_type()) || b.input.dim() < 2) return std::nullopt;
      const auto ids = b.input.dim() == 2 ? b.input[sample] : b.input[sample][0];
      if (ids.dim() != 1 || position >= ids.size(0)) return std::nullopt;
      return ids[position].item<int64_t>();
    }
    return std::nullopt;
  };
  json list = json::array();
  for (const auto& p : peaks.peaks()) {
    json j = {{"module", p.module},
              {"value", p.value},
              {"sample", p.sample},
              {"position", p.position},
              {"dim", p.dim},
              {"usual_position", p.usual_position},
              {"usual_share", p.usual_share}};
    if (const auto token = token_at(p.sample, p.position)) j["token"] = *token;
    list.push_back(j);
  }
  return list;
}

bool wants(const std::vector<std::string>& precisions, const std::string& p) {
  return std::find(precisions.begin(), precisions.end(), p) != precisions.end();
}

// One evaluation pass with a line on stderr when it ends: a whole text takes minutes in all precisions.
template <class Pass>
json timed_pass(const std::string& what, const std::vector<Batch>& batches, Pass&& pass) {
  const auto start = std::chrono::steady_clock::now();
  auto result = pass();
  std::fprintf(stderr, "[eval] %s: %zu batches in %.1f s\n", what.c_str(), batches.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return result;
}

// The FP32 passes: the reference outputs (stored in the cache), with the outlier statistics and activation peaks,
// then the attention use; result entries "fp32", "extra"[name]["fp32"], "outliers" and "attention".
json evaluate_fp32(const Task& task, TaskModel& model, const nn::ActivationPointsPtr& points,
                   const std::map<std::string, std::vector<Batch>>& extra_sets, const at::Tensor& probe,
                   EvaluationCache& cache) {
  use_eager_attention(*points);  // the FP32 reference has the attention scores and probabilities W8A8 quantizes too
  cache.probe_points = point_values(model, points, probe);
  points->set_transform(nullptr);
  analysis::OutlierStats stats;
  points->add_observer(
      analysis::outlier_observer(stats, [&task](const std::string& p) { return task.outlier_rows(p); }));
  analysis::ActivationPeaks peaks;
  points->add_observer([&](const std::string& p, const at::Tensor& x) {
    if (task.outlier_rows(p) != analysis::OutlierRows::kSkip && x.dim() >= 2) peaks.add(p, x);
  });
  json result;
  const auto& batches = task.eval_batches();
  result["fp32"] = timed_pass("FP32 with outlier statistics", batches,
                              [&] { return evaluate_batches(task, model, batches, nullptr, &cache.outputs); });
  points->clear_observers();
  for (const auto& [name, extra] : extra_sets)
    result["extra"][name]["fp32"] = timed_pass("FP32 on " + name, extra, [&] {
      return evaluate_batches(task, model, extra, nullptr, &cache.extra_outputs[name]);
    });
  result["outliers"] = outlier_json(stats);
  result["outliers"]["peaks"] = peaks_json(peaks, batches);
  result["attention"] = attention_use_json(model, points, batches);
  return result;
}

}  // namespace

json evaluate_batches(const Task& task, TaskModel& model, const std::vector<Batch>& batches,
                      const std::vector<at::Tensor>* reference, std::vector<at::Tensor>* outputs_out,
                      const ToModel& to_model) {
  torch::NoGradGuard no_grad;
  model.module->eval();
  std::map<std::string, double> sum;
  double rows = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    const auto& batch = batches[i];
    const double w = static_cast<double>(batch.input.size(0));
    const auto output = model.logits(to_model ? to_model(batch.input) : batch.input).to(at::kCPU, at::kFloat);
    at::Tensor kept;
    if (task.regression()) {
      const auto error = output - batch.target;
      sum["loss"] += w * error.pow(2).mean().item<double>();
      sum["mae"] += w * error.abs().mean().item<double>();
      if (reference) {
        const auto& ref = (*reference)[i];
        sum["output_change"] += w * ((output - ref).norm() / ref.norm()).item<double>();
      }
      kept = output;
    } else {
      auto log_p = at::log_softmax(output.reshape({-1, output.size(-1)}), -1);
      auto target = batch.target;
      if (batch.scored.defined())
        log_p = log_p.index_select(0, batch.scored), target = target.index_select(0, batch.scored);
      sum["loss"] += w * -log_p.gather(-1, target.unsqueeze(-1)).mean().item<double>();
      sum["accuracy"] += w * log_p.argmax(-1).eq(target).to(at::kDouble).mean().item<double>();
      if (reference) {
        const auto& ref = (*reference)[i];
        sum["kl"] += w * (ref.exp() * (ref - log_p)).sum(-1).mean().item<double>();
        sum["same_top1"] += w * ref.argmax(-1).eq(log_p.argmax(-1)).to(at::kDouble).mean().item<double>();
      }
      kept = log_p;
    }
    if (outputs_out) outputs_out->push_back(kept);
    rows += w;
  }
  json e;
  for (const auto& [key, total] : sum) e[key] = total / rows;
  e["samples"] = rows;  // sequences, images or series windows: what the means are over
  if (task.regression()) e["mse"] = e["loss"];
  e["metric"] = task.metric(e["loss"].get<double>(), e.value("accuracy", 0.0));
  return e;
}

void use_eager_attention(nn::ActivationPoints& points) {
  points.set_transform([](const std::string&, const at::Tensor& x) { return x; });
}

json track_outliers(const Task& task, TaskModel& model, const nn::ActivationPointsPtr& points, at::Device device) {
  analysis::OutlierStats stats;
  points->add_observer(
      analysis::outlier_observer(stats, [&task](const std::string& p) { return task.outlier_rows(p); }));
  {
    torch::NoGradGuard no_grad;
    model.module->eval();
    model.logits(task.eval_batches().front().input.to(device));
  }
  points->clear_observers();
  model.module->train();
  auto j = outlier_json(stats);
  j.erase("modules");
  return j;
}

void note_constant_zero_points(const std::string& tag, const json& result) {
  if (!result.contains("constant_zero_points")) return;
  const auto& zero = result["constant_zero_points"];
  std::fprintf(stderr,
               "%s note: %zu activation points were exactly 0 on every calibration batch (first: %s): those parts of "
               "the model do nothing and may never have trained (clipped attention starting below its clip point?)\n",
               tag.c_str(), zero.size(), zero.front().get<std::string>().c_str());
}

json evaluate_model(const Task& task, TaskModel& model, const EvaluateOptions& options) {
  for (const auto& p : options.precisions)
    TORCH_CHECK(p == "fp32" || p == "fp16" || p == "bf16" || p == "w8a8" || p == "int8",
                "evaluate: unknown precision '", p, "' (fp32, fp16, bf16, w8a8, int8)");
  auto points = std::make_shared<nn::ActivationPoints>();
  model.set_points(points);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.calibration_seed);
  const auto& batches = task.eval_batches();
  const auto probe = batches.front().input.slice(0, 0, 4);
  static const std::map<std::string, std::vector<Batch>> kNoExtra;
  const auto& extra_sets = options.extra_sets ? task.extra_evaluations() : kNoExtra;
  EvaluationCache own;
  auto& cache = options.cache ? *options.cache : own;
  json result = cache.outputs.empty() ? evaluate_fp32(task, model, points, extra_sets, probe, cache) : json::object();
  for (const auto& [name, extra] : extra_sets)
    TORCH_CHECK(cache.extra_outputs.count(name), "evaluate: the cached FP32 reference has no outputs on ", name);
  const auto& reference = cache.outputs;
  for (const auto& [key, label, type] :
       {std::tuple{"fp16", "FP16", at::kHalf}, std::tuple{"bf16", "BF16", at::kBFloat16}}) {
    if (!wants(options.precisions, key)) continue;
    if (options.native_half) {
      analysis::NativeHalfPrecision half(*model.module, type, *options.native_half);
      result[key] = timed_pass(label, batches, [&] {
        return evaluate_batches(task, model, batches, &reference, nullptr,
                                [&half](const at::Tensor& x) { return half.input(x); });
      });
    } else {
      analysis::HalfPrecisionEmulation half(*model.module, points, type);
      result[key] = timed_pass(label, batches, [&] { return evaluate_batches(task, model, batches, &reference); });
    }
  }
  result["half_precision"] = options.native_half ? "native on " + options.native_half->str() : "emulated";

  const auto input_point = task.int8_input_point();
  const auto& e = task.evaluation();
  // Real INT8 Linears check the simulation of the paper's scheme; other schemes have nothing real to compare with.
  const bool int8 = wants(options.precisions, "int8") && input_point && e.real_int8();
  if (!wants(options.precisions, "w8a8") && !int8) return result;
  // W8A8: ranges from the task's calibration batches (or the first evaluation batches, eval.calibrate_on) with the
  // 0.001/99.999 percentiles, then frozen.
  analysis::W8A8Options q;
  q.ranges.method = analysis::RangeMethod::kPercentile;
  q.ranges.percentile = 99.999;
  q.keep_float = options.keep_float;
  q.keep_float_weights = options.keep_float_weights;
  q.weight_bits = e.weight_bits;
  q.activation_bits = e.activation_bits;
  q.per_channel_weights = e.per_channel_weights;
  q.per_row_tables = e.per_row_tables;
  // Other schemes keep the result's "w8a8" key (what reads it needs no change) and say what they were.
  if (!e.paper_scheme())
    result["w8a8_bits"] = {{"weights", e.weight_bits},
                           {"activations", e.activation_bits},
                           {"weight_granularity", e.per_channel_weights ? "channel" : "tensor"},
                           {"table_granularity", e.per_row_tables ? "row" : "tensor"}};
  analysis::W8A8Simulation sim(*model.module, points, task.w8a8_lookups(model), q);
  const bool on_eval = e.calibrate_on == "eval";
  if (on_eval) result["w8a8_calibrate_on"] = "eval";  // the output says so: not the paper's protocol
  if (cache.w8a8_ranges.empty()) {
    sim.start_calibration();
    torch::NoGradGuard no_grad;
    model.module->eval();
    for (int64_t i = 0; i < e.calibration_batches; ++i)
      model.logits(on_eval ? batches[i % batches.size()].input : task.calibration_batch(i, gen).input);
    sim.quantize();
    if (!options.keep_float) cache.w8a8_ranges = sim.ranges();
  } else {
    sim.quantize(cache.w8a8_ranges);
  }
  const auto ranges = sim.ranges();
  if (wants(options.precisions, "w8a8")) {
    const auto widths = e.widths();
    const auto label = widths + (on_eval ? " (ranges from the first evaluation batches)" : "");
    result["w8a8"] = timed_pass(label, batches, [&] { return evaluate_batches(task, model, batches, &reference); });
    for (const auto& [name, extra] : extra_sets)
      result["extra"][name]["w8a8"] = timed_pass(widths + " on " + name, extra, [&] {
        return evaluate_batches(task, model, extra, &cache.extra_outputs.at(name));
      });
    result["w8a8_point_errors"] = point_errors(model, points, probe, cache.probe_points, ranges);
    for (const auto& w : sim.weight_errors()) {  // the weights' side: what the grid did to each
      json e = {{"weight", w.name}, {"max_abs", w.max_abs}, {"rms", w.rms}, {"relative_error", w.relative_error}};
      if (w.kept_float) e["kept_float"] = true;
      if (w.lookup) e["lookup"] = true;
      result["w8a8_weight_errors"].push_back(e);
    }
  }
  // Points that were exactly 0 on every calibration batch: a part of the model that does nothing (attention whose
  // every probability is clipped has no gradient and never trains). Recorded, and named by the caller.
  for (const auto& [name, range] : ranges)
    if (range.first == 0 && range.second == 0) result["constant_zero_points"].push_back(name);
  if (int8) {  // real INT8 Linears (LibTorch's quantized engine) with the same ranges: agreement with the simulation
    const analysis::Int8Linears linears(*model.module, ranges, input_point);
    linears.attach(*points);
    result["int8"] = timed_pass("INT8", batches, [&] { return evaluate_batches(task, model, batches, &reference); });
    result["int8"]["engine"] = analysis::current_quantized_engine();
    points->set_linear_override(nullptr);
    // Parameter memory: every parameter in float32, vs the INT8 Linears' weights in one byte each.
    int64_t parameters = 0;
    for (const auto& p : model.module->parameters()) parameters += p.numel();
    result["fp32_parameter_bytes"] = 4 * parameters;
    result["int8_parameter_bytes"] = 4 * parameters - 3 * linears.weight_elements();
  }
  sim.restore();
  if (int8 && options.time_int8) {  // one forward pass: float32 vs INT8 Linears with nothing else quantized
    torch::NoGradGuard no_grad;
    model.module->eval();
    const auto& batch = task.eval_batches().front().input;
    result["fp32_forward_ms"] = 1e3 * bench::median_seconds([&] { model.logits(batch); }, 1.0);
    const analysis::Int8Linears linears(*model.module, ranges, input_point);
    linears.attach(*points);
    result["int8_forward_ms"] = 1e3 * bench::median_seconds([&] { model.logits(batch); }, 1.0);
    points->set_linear_override(nullptr);
  }
  points->clear();
  model.set_points(nullptr);
  return result;
}

}  // namespace outeffhop::experiment
