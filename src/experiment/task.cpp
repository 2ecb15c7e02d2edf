// Task configs shared by every task, and the task registry (see task.h).
#include "outeffhop/experiment/task.h"

#include <stdexcept>

namespace outeffhop::experiment {

std::unique_ptr<Task> make_lm_task(ConfigReader& config, const std::string& data_dir, const std::string& cache_dir);
std::unique_ptr<Task> make_vit_task(ConfigReader& config, const std::string& data_dir);
std::unique_ptr<Task> make_marker_copy_task(ConfigReader& config);
std::unique_ptr<Task> make_bert_task(ConfigReader& config, const std::string& data_dir);
std::unique_ptr<Task> make_stanhop_task(ConfigReader& config, const std::string& data_dir);
TaskModel build_stanhop_model(const nlohmann::json& task_config, const std::string& variant);
TaskModel build_bert_model(const nlohmann::json& task_config, const std::string& variant);
TaskModel build_lm_model(const nlohmann::json& task_config, const std::string& variant);
TaskModel build_vit_model(const nlohmann::json& task_config, const std::string& variant);

TaskModel build_model(const nlohmann::json& task_config, const std::string& variant) {
  const auto kind = task_config.value("task", std::string());
  if (kind == "lm" || kind == "marker-copy") return build_lm_model(task_config, variant);  // both are OPTs
  if (kind == "vit") return build_vit_model(task_config, variant);
  if (kind == "bert") return build_bert_model(task_config, variant);
  if (kind == "stanhop") return build_stanhop_model(task_config, variant);
  throw std::runtime_error("build_model: unknown task '" + kind + "' in the config " + task_config.dump());
}

nlohmann::json read_model_options(ConfigReader c, const nlohmann::json& defaults) {
  auto model = defaults;
  for (auto& [key, value] : model.items()) {
    const auto given = c.get<nlohmann::json>(key, value);
    const bool same_type = value.is_number_integer() ? given.is_number_integer()
                           : value.is_number()       ? given.is_number()
                                                     : given.type() == value.type();
    if (!same_type)
      c.fail(key, "must be " + std::string(value.is_number_integer() ? "an integer" : value.type_name()) + ", got " +
                      given.dump());
    value = given;
  }
  c.finish();
  return model;
}

nlohmann::json transformer_model_defaults(int64_t d_model, int64_t d_ff) {
  return {{"d_model", d_model}, {"layers", 2},          {"heads", 4},      {"d_ff", d_ff},
          {"dropout", 0.0},     {"attention_dropout", 0.0}, {"init_std", 0.02}};
}

void read_train_options(ConfigReader c, train::TrainOptions& t, int64_t& batch, nlohmann::json& resolved) {
  batch = c.get("batch", batch);
  t.steps = c.get("steps", t.steps);
  t.lr = c.get("lr", t.lr);
  t.weight_decay = c.get("weight_decay", t.weight_decay);
  t.beta1 = c.get("beta1", t.beta1);
  t.beta2 = c.get("beta2", t.beta2);
  t.eps = c.get("eps", t.eps);
  t.warmup = c.get("warmup", t.warmup);
  t.schedule = c.get("schedule", t.schedule);
  t.clip = c.get("clip", t.clip);
  if (t.schedule == "halving") {
    t.halve_every = c.get("halve_every", t.halve_every);
    t.halvings = c.get("halvings", t.halvings);
    if (t.halve_every < 1 || t.halvings < 0) c.fail("", "the halving schedule needs halve_every >= 1, halvings >= 0");
  }
  c.finish();
  if (batch < 1 || t.steps < 1 || t.lr <= 0 || t.weight_decay < 0 || t.warmup < 0)
    c.fail("", "needs batch >= 1, steps >= 1, lr > 0, weight_decay >= 0, warmup >= 0");
  if (t.schedule != "linear" && t.schedule != "cosine" && t.schedule != "constant" && t.schedule != "halving")
    c.fail("schedule", "must be linear, cosine, constant or halving, got '" + t.schedule + "'");
  resolved.update({{"batch", batch},
                   {"steps", t.steps},
                   {"lr", t.lr},
                   {"weight_decay", t.weight_decay},
                   {"beta1", t.beta1},
                   {"beta2", t.beta2},
                   {"eps", t.eps},
                   {"warmup", t.warmup},
                   {"schedule", t.schedule},
                   {"clip", t.clip}});
  if (t.schedule == "halving") resolved.update({{"halve_every", t.halve_every}, {"halvings", t.halvings}});
}

void read_evaluation_options(ConfigReader c, EvaluationOptions& e, nlohmann::json& resolved) {
  if (c.has("batches") && c.required<nlohmann::json>("batches") == "all")
    e.batches = EvaluationOptions::all;
  else
    e.batches = c.get("batches", e.batches);
  e.calibration_batches = c.get("calibration_batches", e.calibration_batches);
  e.calibrate_on = c.get("calibrate_on", e.calibrate_on);
  e.weight_bits = c.get("weight_bits", e.weight_bits);
  e.activation_bits = c.get("activation_bits", e.activation_bits);
  const auto granularity = c.get("weight_granularity", std::string("tensor"));
  e.per_channel_weights = granularity == "channel";
  const auto table_granularity = c.get("table_granularity", std::string("tensor"));
  e.per_row_tables = table_granularity == "row";
  e.track_every = c.get("track_every", e.track_every);
  e.int8 = c.get("int8", e.int8);
  c.finish();
  if (e.batches < 1 || e.calibration_batches < 1 || e.track_every < 0)
    c.fail("", "needs batches >= 1 (or all), calibration_batches >= 1, track_every >= 0");
  if (e.calibrate_on != "task" && e.calibrate_on != "eval")
    c.fail("calibrate_on", "is '" + e.calibrate_on + "'; use task (the task's calibration batches) or eval");
  for (const auto& [key, bits] : {std::pair{"weight_bits", e.weight_bits}, {"activation_bits", e.activation_bits}})
    if (bits < 2 || bits > 16) c.fail(key, "is " + std::to_string(bits) + "; the simulation takes 2 to 16 bits");
  if (granularity != "tensor" && granularity != "channel")
    c.fail("weight_granularity", "is '" + granularity + "'; use tensor (one weight scale per tensor) or channel");
  if (table_granularity != "tensor" && table_granularity != "row")
    c.fail("table_granularity", "is '" + table_granularity + "'; use tensor (one scale per embedding table) or row");
  resolved = {{"batches", e.batches == EvaluationOptions::all ? nlohmann::json("all") : nlohmann::json(e.batches)},
              {"calibration_batches", e.calibration_batches},
              {"track_every", e.track_every},
              {"int8", e.int8}};
  if (e.calibrate_on != "task") resolved["calibrate_on"] = e.calibrate_on;  // absent: as in runs made before it
  if (e.weight_bits != 8) resolved["weight_bits"] = e.weight_bits;  // likewise
  if (e.activation_bits != 8) resolved["activation_bits"] = e.activation_bits;
  if (e.per_channel_weights) resolved["weight_granularity"] = granularity;
  if (e.per_row_tables) resolved["table_granularity"] = table_granularity;
}

namespace {
[[noreturn]] void unknown_kind(const ConfigReader& config, const std::string& kind) {
  config.fail("task", "must be lm, bert, vit, stanhop or marker-copy, got '" + kind + "'");
}
}  // namespace

std::string task_label(ConfigReader config) {
  const auto kind = config.required<std::string>("task");
  auto data = config.child("data");
  if (kind == "lm") return "opt-books";
  if (kind == "bert") return "bert-books";
  if (kind == "marker-copy") return "marker-copy";
  if (kind == "vit") return "vit-" + data.get<std::string>("dataset", kDefaultImageDataset);
  if (kind == "stanhop")
    return "stanhop-" + data.get<std::string>("dataset", kDefaultSeriesDataset) + "-" +
           std::to_string(data.get<int64_t>("out_len", kDefaultHorizon));
  unknown_kind(config, kind);
}

double read_held_out(ConfigReader& data) {
  const auto held_out = data.get("held_out", 0.02);
  if (!(held_out >= 0 && held_out <= 0.5)) data.fail("held_out", "must be a fraction in [0, 0.5]");
  return held_out;
}

void record_held_out(double held_out, nlohmann::json& data_json) {
  // Absent when 0: the runs made before held_out existed trained on all the books, and their configs stay valid.
  if (held_out > 0) data_json["held_out"] = held_out;
}

nlohmann::json saved_task_config(nlohmann::json resolved) {
  const auto kind = resolved.value("task", "");
  if ((kind == "lm" || kind == "bert") && !resolved["data"].contains("held_out")) resolved["data"]["held_out"] = 0;
  return resolved;
}

std::unique_ptr<Task> make_task(ConfigReader config, const std::string& data_dir, const std::string& cache_dir) {
  const auto label = task_label(config);
  const auto kind = config.required<std::string>("task");
  config.get<nlohmann::json>("derived", {});  // filled in from the data by the runner; ignored on input
  std::unique_ptr<Task> task;
  if (kind == "lm") {
    task = make_lm_task(config, data_dir, cache_dir);
  } else if (kind == "vit") {
    task = make_vit_task(config, data_dir);
  } else if (kind == "bert") {
    task = make_bert_task(config, data_dir);
  } else if (kind == "stanhop") {
    task = make_stanhop_task(config, data_dir);
  } else if (kind == "marker-copy") {
    task = make_marker_copy_task(config);
  } else {
    unknown_kind(config, kind);
  }
  config.finish();
  TORCH_CHECK(task->label() == label, "experiment: task_label gave '", label, "' for a task labelled '", task->label(),
              "' (their defaults differ)");
  return task;
}

}  // namespace outeffhop::experiment
