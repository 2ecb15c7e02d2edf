// `outeffhop eval`: a saved model evaluated in the precisions asked for (FP32 always, with the paper's outlier
// statistics), on its task's evaluation data, with what each precision costs against FP32.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "commands.h"
#include "outeffhop/experiment/config.h"
#include "outeffhop/experiment/evaluation.h"
#include "outeffhop/experiment/runner.h"
#include "outeffhop/experiment/w8a8_breakdown.h"
#include "saved_model.h"

namespace outeffhop::cli {
namespace {

// `eval --set`: only what is evaluated and on which data may change. The data settings that training fixed stay: the
// held-out split (the rest is what the model trained on) and what makes its tokens (a vocabulary of the same size
// would pass the model check and read other tokens). Whether the model changed is checked once the task is rebuilt.
void set_evaluation_settings(nlohmann::json& task_config, const std::vector<std::string>& assignments) {
  const auto saved_data = task_config["data"];
  for (const auto& assignment : assignments) {
    TORCH_CHECK(assignment.starts_with("data.") || assignment.starts_with("eval."), "eval --set ", assignment,
                ": only data.* and eval.* settings can change for a saved model");
    experiment::apply_override(task_config, assignment);
  }
  for (const char* key : {"held_out", "tokenizer", "bos", "vocab", "sentencepiece_model", "sentencepiece_vocab"})
    if (saved_data.contains(key))  // a key the task does not have is left to its reader to refuse
      TORCH_CHECK(task_config["data"].value(key, nlohmann::json()) == saved_data[key], "eval --set: data.", key,
                  " is fixed by training (the model was trained with ", saved_data[key].dump(), ")");
}

// `eval --w8a8-breakdown`: the W8A8 cost with each kind of point in float, the largest saving first.
void print_w8a8_breakdown(const experiment::Task& task, const nlohmann::json& breakdown) {
  const bool values = task.regression();
  const std::string cost = experiment::w8a8_cost(task);
  const double scale = values ? 100 : 1e3;  // percent, millinats
  const auto& full = breakdown["full"];
  std::vector<std::string> sets;
  if (full.contains("extra"))
    for (const auto& [name, precisions] : full["extra"].items()) sets.push_back(name);
  auto columns = [&](const nlohmann::json& w8a8, const nlohmann::json& base) {
    const double c = w8a8[cost].get<double>(), b = base[cost].get<double>();
    const double saved = b > 0 ? std::round(100 * (b - c) / b) + 0.0 : 0.0;  // + 0.0: no "-0%"
    std::printf(" %.3f | %.0f%% |", scale * c, saved);
  };
  const char* label = values ? "output change (%)" : "KL (mnats)";
  std::printf("W8A8 against FP32 with one kind of activation point in float (saved: share of the full W8A8 cost)\n"
              "| points in float | count | %s | saved |", label);
  for (const auto& name : sets) std::printf(" %s on %s | saved |", label, name.c_str());
  std::printf("\n|---|---|---|---|");
  for (size_t i = 0; i < sets.size(); ++i) std::printf("---|---|");
  std::printf("\n| none (full W8A8) | 0 |");
  columns(full["w8a8"], full["w8a8"]);
  for (const auto& name : sets) columns(full["extra"][name]["w8a8"], full["extra"][name]["w8a8"]);
  for (const auto& row : breakdown["kinds"]) {
    std::printf("\n| %s | %lld |", row["kind"].get<std::string>().c_str(), row["points"].get<long long>());
    columns(row["w8a8"], full["w8a8"]);
    for (const auto& name : sets) columns(row["extra"][name], full["extra"][name]["w8a8"]);
  }
  std::printf("\n");
}

// A suffix that names nothing would leave the W8A8 evaluation unchanged without a word. `list` is the result's list of
// points or weights, `key` the name field of its entries, `tail` what follows the suffix in a name (weights: ".weight"
// after their module's name), `what` the names in words; names in `skip` do not count.
void check_suffixes(const char* option, const std::vector<std::string>& suffixes, const nlohmann::json& result,
                    const char* list, const char* key, const std::string& tail, const char* what,
                    const std::set<std::string>& skip = {}) {
  if (!result.contains(list)) return;
  for (const auto& suffix : suffixes) {
    bool found = false;
    for (const auto& e : result[list]) {
      const auto name = e[key].get<std::string>();
      found = found || (name.ends_with(suffix + tail) && !skip.count(name));
    }
    TORCH_CHECK(found, option, " ", suffix, ": no ", what, " ends with it (eval --json lists them under ", list,
                ", e.g. ", result[list].back()[key].get<std::string>(), ")");
  }
}

// The lookup points (embed_tokens, ...): they carry embedding table rows, quantized as weights, so
// --w8a8-keep-float-weights reaches them and the point options do not.
std::set<std::string> lookup_points(const nlohmann::json& result) {
  std::set<std::string> points;
  for (const auto& w : result.value("w8a8_weight_errors", nlohmann::json::array()))
    if (w.value("lookup", false)) {
      const auto weight = w["weight"].get<std::string>();
      points.insert(weight.substr(0, weight.rfind(".weight")));
    }
  return points;
}

}  // namespace

void add_eval(CLI::App& app) {
  struct Args {
    std::string checkpoint, data_dir = "../shared/data";
    std::vector<std::string> precisions = {"fp32", "fp16", "bf16", "w8a8", "int8"};
    std::vector<std::string> keep_float, quantize_only, keep_float_weights, overrides;
    std::string native_half, eval_text;
    bool json = false, skip_held_out = false, w8a8_breakdown = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval",
                                 "Evaluate a model saved by `outeffhop experiment` in FP32, FP16, BF16, "
                                 "W8A8 (simulated) and INT8 (real): task metric, KL and top-1 agreement "
                                 "against FP32, avg kurtosis and max inf-norm");
  cmd->add_option("--checkpoint", a->checkpoint, "RUNS_DIR/NAME/TASK/RUN/model.safetensors")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--precision", a->precisions, "fp32, fp16, bf16, w8a8, int8 (FP32 is always evaluated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--data-dir", a->data_dir, "the shared data directory")->capture_default_str();
  auto* keep_float_option =
      cmd->add_option("--w8a8-keep-float", a->keep_float,
                      "activation points (name suffixes, e.g. attn_scores,attn_probs) that W8A8 leaves in float")
          ->delimiter(',');
  auto* quantize_only_option =
      cmd->add_option("--w8a8-quantize-only", a->quantize_only,
                      "the only activation points (name suffixes) that W8A8 quantizes: what they cost on their own "
                      "(weights are still quantized; --set eval.weight_bits=16 leaves them almost exact)")
          ->delimiter(',')
          ->excludes(keep_float_option);
  cmd->add_option("--w8a8-keep-float-weights", a->keep_float_weights,
                  "weights (their modules' name suffixes, e.g. out_proj or layers.0.fc1) that W8A8 leaves in float: "
                  "which weights cost the most, with eval.activation_bits=16 on their own")
      ->delimiter(',');
  cmd->add_option("--native-half", a->native_half,
                  "run FP16/BF16 natively, the model cast to half precision on this device (cuda, cuda:1, cpu), "
                  "instead of emulating the rounding on CPU");
  cmd->add_option("--eval-text", a->eval_text,
                  "lm (OPT) models: evaluate on this text file instead of the task's (WikiText-2 valid); BOM, CRLF "
                  "and a Gutenberg header and footer are removed (--set data.eval_text=PATH, with PATH relative to "
                  "here rather than the data dir)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", a->overrides,
                  "change a data or eval setting of the saved task config: path=value, e.g. eval.batches=all (every "
                  "batch of the evaluation text and held-out split) or data.eval_text=text/tinyshakespeare.txt "
                  "(repeatable); a change that would alter the model as saved is refused");
  cmd->add_flag("--skip-held-out", a->skip_held_out,
                "evaluate the main evaluation set only, not the held-out books (lm, bert tasks with data.held_out)");
  cmd->add_flag("--w8a8-breakdown", a->w8a8_breakdown,
                "where W8A8 loses: evaluate W8A8 again with each kind of activation point (a point's name with its "
                "layer numbers as *) in float, one kind at a time, and print the cost with each, the largest saving "
                "first (instead of the usual evaluation; one W8A8 evaluation per kind)")
      ->excludes(keep_float_option)
      ->excludes(quantize_only_option);
  cmd->add_flag("--json", a->json, "print the full result as JSON (per module, per layer, per point)");
  cmd->callback([a] {
    auto saved = load_saved_model(a->checkpoint);
    auto task_config = experiment::saved_task_config(saved.config.at("task"));
    if (!a->eval_text.empty()) {
      TORCH_CHECK(task_config.at("task") == "lm", "--eval-text: ", a->checkpoint, " is a ",
                  task_config.at("task").get<std::string>(), " model; only lm (OPT) models evaluate on a text file");
      task_config["data"]["eval_text"] = std::filesystem::weakly_canonical(a->eval_text).string();
    }
    const auto saved_config = task_config;
    set_evaluation_settings(task_config, a->overrides);
    const auto task = experiment::make_task(
        experiment::ConfigReader(task_config, a->checkpoint + " (config metadata and --set)"), a->data_dir);
    for (const char* part : {"model", "derived"})  // what the saved weights were made for
      TORCH_CHECK(task->resolved()[part] == saved_config[part], "--set changes the model the checkpoint holds: ",
                  part, " was ", saved_config[part].dump(), ", is now ", task->resolved()[part].dump());
    experiment::EvaluateOptions options;
    options.precisions = a->precisions;
    options.extra_sets = !a->skip_held_out;
    options.calibration_seed = saved.config.value("seed", int64_t{0}) + 2000;
    auto any_suffix = [](const std::vector<std::string>& suffixes, const std::string& name) {
      return std::any_of(suffixes.begin(), suffixes.end(), [&](const auto& suffix) { return name.ends_with(suffix); });
    };
    if (!a->keep_float.empty())
      options.keep_float = [=, keep = a->keep_float](const std::string& name) { return any_suffix(keep, name); };
    if (!a->quantize_only.empty())
      options.keep_float = [=, only = a->quantize_only](const std::string& name) { return !any_suffix(only, name); };
    if (!a->keep_float_weights.empty())
      options.keep_float_weights = [=, keep = a->keep_float_weights](const std::string& module) {
        return any_suffix(keep, module);
      };
    if (!a->native_half.empty()) {
      options.native_half = experiment::available_device(a->native_half);
      std::fprintf(stderr, "FP16/BF16 natively on %s\n", options.native_half->str().c_str());
    }
    if (a->w8a8_breakdown) {
      const auto breakdown = experiment::w8a8_breakdown(*task, saved.model, options);
      if (a->json)
        std::cout << breakdown.dump(1) << "\n";
      else
        print_w8a8_breakdown(*task, breakdown);
      return;
    }
    auto result = experiment::evaluate_model(*task, saved.model, options);
    for (const auto& [option, suffixes] : {std::pair{"--w8a8-keep-float", &a->keep_float},
                                           {"--w8a8-quantize-only", &a->quantize_only}})
      check_suffixes(option, *suffixes, result, "w8a8_point_errors", "point", "", "activation point's name",
                     lookup_points(result));
    check_suffixes("--w8a8-keep-float-weights", a->keep_float_weights, result, "w8a8_weight_errors", "weight",
                   ".weight", "quantized weight's module name");
    experiment::note_constant_zero_points(a->checkpoint, result);
    if (a->json) {
      std::cout << result.dump(1) << "\n";
      return;
    }
    const bool values = task->regression();
    std::printf("%s (%s: %s; %s; FP16/BF16 %s; %.0f samples)\n| precision | %s | %s |\n|---|---|---|---|\n",
                a->checkpoint.c_str(), task->label().c_str(), task->description().c_str(),
                saved.config.at("variant").get<std::string>().c_str(),
                result["half_precision"].get<std::string>().c_str(), result["fp32"]["samples"].get<double>(),
                task->metric_name().c_str(),
                values ? "MAE | output change vs FP32 %" : "KL vs FP32 (mnats) | same top-1 %");
    auto row = [values](const std::string& label, const nlohmann::json& r) {
      if (values)
        std::printf("| %s | %.4f | %.4f | %.3f |\n", label.c_str(), r["metric"].get<double>(), r["mae"].get<double>(),
                    100 * r.value("output_change", 0.0));
      else
        std::printf("| %s | %.4f | %.3f | %.2f |\n", label.c_str(), r["metric"].get<double>(), 1e3 * r.value("kl", 0.0),
                    100 * r.value("same_top1", 1.0));
    };
    const auto quantized = [&](const std::string& p) {  // "w8a8", or the widths eval.weight_bits/activation_bits set
      if (p != "w8a8") return p;
      auto widths = task->evaluation().widths();
      std::transform(widths.begin(), widths.end(), widths.begin(), [](unsigned char c) { return std::tolower(c); });
      return widths;
    };
    for (const char* p : {"fp32", "fp16", "bf16", "w8a8", "int8"})
      if (result.contains(p)) row(quantized(p), result[p]);
    if (result.contains("extra"))  // further evaluation sets (lm, bert: the held-out books)
      for (const auto& [name, precisions] : result["extra"].items())
        for (const auto& [p, r] : precisions.items()) row(quantized(p) + " on " + name, r);
    std::printf("avg kurtosis %.3f, max inf-norm %.3f\n", result["outliers"]["avg_kurtosis"].get<double>(),
                result["outliers"]["max_inf_norm"].get<double>());
    auto peaks = result["outliers"]["peaks"].get<std::vector<nlohmann::json>>();
    std::sort(peaks.begin(), peaks.end(), [](const auto& a, const auto& b) { return a["value"] > b["value"]; });
    if (peaks.size() > 5) peaks.resize(5);
    std::printf(
        "largest activations:\n| module | max abs | sample | position | dim | token | usual position of a "
        "sample's max |\n|---|---|---|---|---|---|---|\n");
    for (const auto& p : peaks)
      std::printf("| %s | %.2f | %lld | %lld | %lld | %s | %lld (%.0f%% of samples) |\n",
                  p["module"].get<std::string>().c_str(), p["value"].get<double>(), p["sample"].get<long long>(),
                  p["position"].get<long long>(), p["dim"].get<long long>(),
                  p.contains("token") ? std::to_string(p["token"].get<long long>()).c_str() : "-",
                  p["usual_position"].get<long long>(), 100 * p["usual_share"].get<double>());
    std::printf(
        "attention given (row sums of the attention probabilities; softmax: 1; gated attention: its gates too):\n"
        "| attention | mean row mass | rows below 0.5 %% | mean mass on the first key | mean row entropy (nats) | "
        "mean gate | gates below 0.5 %% |\n|---|---|---|---|---|---|---|\n");
    for (const auto& a : result["attention"]) {
      std::printf("| %s | %.4f | %.2f | %.4f |", a["point"].get<std::string>().c_str(), a["mean_mass"].get<double>(),
                  100 * a["low_mass_share"].get<double>(), a["first_key_mass"].get<double>());
      if (a.contains("mean_entropy"))
        std::printf(" %.3f |", a["mean_entropy"].get<double>());
      else
        std::printf(" - |");
      if (a.contains("mean_gate"))
        std::printf(" %.4f | %.2f |\n", a["mean_gate"].get<double>(), 100 * a["low_gate_share"].get<double>());
      else
        std::printf(" - | - |\n");
    }
    if (result.contains("w8a8_weight_errors")) {  // the weights' side of the simulation, in one line
      double sum = 0;
      size_t quantized_weights = 0, kept = 0;
      const nlohmann::json* worst = nullptr;
      for (const auto& w : result["w8a8_weight_errors"]) {
        if (w.value("kept_float", false)) {
          ++kept;
          continue;
        }
        sum += w["relative_error"].get<double>(), ++quantized_weights;
        if (!worst || w["relative_error"] > (*worst)["relative_error"]) worst = &w;
      }
      if (worst)
        std::printf("%s weights: mean relative error %.4f over %zu tensors, largest %.4f (%s, max abs %.3f)",
                    quantized("w8a8").c_str(), sum / quantized_weights, quantized_weights,
                    (*worst)["relative_error"].get<double>(), (*worst)["weight"].get<std::string>().c_str(),
                    (*worst)["max_abs"].get<double>());
      if (kept) std::printf("%s%zu weight%s kept in float", worst ? "; " : "", kept, kept == 1 ? "" : "s");
      std::printf("\n");
    }
    if (result.contains("int8_parameter_bytes"))
      std::printf("parameters: FP32 %.3f MB, with INT8 Linears %.3f MB\n",
                  result["fp32_parameter_bytes"].get<double>() / 1e6,
                  result["int8_parameter_bytes"].get<double>() / 1e6);
    if (result.contains("int8_forward_ms"))
      std::printf("forward pass: FP32 %.2f ms, INT8 Linears %.2f ms\n", result["fp32_forward_ms"].get<double>(),
                  result["int8_forward_ms"].get<double>());
  });
}

}  // namespace outeffhop::cli
