// What the experiment runner needs from a task (a model family on a dataset): build a model of an attention variant,
// draw training batches, hold fixed evaluation batches, and say how the paper measured and quantized that model.
// Tasks: "lm" (byte-level OPT on the books, WikiText-2 valid), "bert" (MLM on sentence pairs of the books), "vit"
// (ViT on Fashion-MNIST, MNIST or CIFAR-10), "stanhop" (STanHop-Net forecasting ETTh1, ETTm1 or WTH) and
// "marker-copy" (synthetic: an OPT that must recall one token at marked positions and has nothing to do elsewhere).
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "outeffhop/analysis/outlier_points.h"
#include "outeffhop/experiment/config.h"
#include "outeffhop/nn/activation_points.h"
#include "outeffhop/train.h"

namespace outeffhop::experiment {

struct Batch {
  at::Tensor input;   // what the model's forward takes
  at::Tensor target;  // int64 class ids, one per row of the flattened logits; a forecasting task: the values
  at::Tensor scored = {};  // evaluation: int64 indices of the rows that count (undefined: every row); training ignores it
};

// A built model: the module (parameters under Hugging Face's names), its forward to logits (... x classes; a
// forecasting task's values) and its activation points.
struct TaskModel {
  std::shared_ptr<torch::nn::Module> module;
  std::function<at::Tensor(const at::Tensor&)> logits;
  std::function<void(nn::ActivationPointsPtr)> set_points;
};

struct EvaluationOptions {
  // eval.batches: all, every batch the evaluation data holds (tasks cap the count at what their data holds).
  static constexpr int64_t all = std::numeric_limits<int64_t>::max();
  int64_t batches = 8;              // evaluation batches (fixed; the same for every run), or `all`
  int64_t calibration_batches = 4;  // W8A8 range calibration batches (Task::calibration_batch says from where)
  // Where W8A8 calibrates: "task" (Task::calibration_batch, the paper's protocol) or "eval" (the first evaluation
  // batches, which are then also evaluated: a diagnostic of whether the task's ranges cover the evaluated text).
  std::string calibrate_on = "task";
  // The simulated quantization's bit widths (W8A8 by default; e.g. 4 and 8 for W4A8), whether each Linear weight
  // has one scale per output channel (eval.weight_granularity: channel) rather than one per tensor (the paper's), and
  // whether each embedding table row, one token's, has its own (eval.table_granularity: row).
  int64_t weight_bits = 8;
  int64_t activation_bits = 8;
  bool per_channel_weights = false;
  bool per_row_tables = false;
  bool paper_scheme() const {
    return weight_bits == 8 && activation_bits == 8 && !per_channel_weights && !per_row_tables;
  }
  bool real_int8() const { return int8 && paper_scheme(); }  // real INT8 Linears check the paper's scheme only
  std::string widths() const {  // "W8A8", "W4A8", "W4A8 per-channel", "W4A8 per-channel, tables per row", ...
    // Appended piece by piece: GCC 12 warns falsely (-Wstringop-overflow) on "W" + std::to_string(...).
    std::string label = "W";
    label += std::to_string(weight_bits);
    label += 'A';
    label += std::to_string(activation_bits);
    if (per_channel_weights) label += " per-channel";
    if (per_row_tables) label += ", tables per row";
    return label;
  }
  int64_t track_every = 50;         // outlier statistics on the first evaluation batch every K steps (0: off)
  bool int8 = true;                 // also run real INT8 Linears where the task supports them (see real_int8)
  // Early stopping, for tasks with validation batches: the validation loss every K steps (0: off); training stops
  // after `patience` checks without improvement, and the model with the best validation loss is the one evaluated.
  int64_t validate_every = 0;
  int64_t patience = 3;
};

class Task {
 public:
  virtual ~Task() = default;
  // A short label for files and tables ("opt-books", "vit-fashion-mnist").
  virtual std::string label() const = 0;
  virtual std::string description() const = 0;  // the model and data in words, for tables and plots
  // The task metric from the mean loss and accuracy of an evaluation: perplexity or top-1 (%).
  virtual std::string metric_name() const = 0;
  virtual double metric(double mean_loss, double accuracy) const = 0;
  virtual bool lower_is_better() const = 0;
  // A forecasting task: the model outputs values, trained on the MSE and measured by MSE (the metric) and MAE; the
  // others output class logits (cross-entropy, accuracy).
  virtual bool regression() const { return false; }

  virtual TaskModel build(const std::string& variant) const = 0;
  virtual Batch train_batch(at::Generator& gen) const = 0;
  virtual const std::vector<Batch>& eval_batches() const = 0;
  // Held-out batches for early stopping (evaluation().validate_every); none by default.
  virtual const std::vector<Batch>& validation_batches() const {
    static const std::vector<Batch> none;
    return none;
  }
  // Further fixed evaluation sets (name -> batches) beside eval_batches, each measured in FP32 and W8A8 (the outlier
  // statistics stay on eval_batches); none by default. BERT: held-out sentences of its training books.
  virtual const std::map<std::string, std::vector<Batch>>& extra_evaluations() const {
    static const std::map<std::string, std::vector<Batch>> none;
    return none;
  }
  virtual double label_smoothing() const { return 0.0; }  // of the training loss
  // The i-th W8A8 calibration batch. The paper's protocol per model: OPT draws training batches (the default); BERT
  // takes validation batches.
  virtual Batch calibration_batch(int64_t, at::Generator& gen) const { return train_batch(gen); }

  virtual analysis::OutlierRows outlier_rows(const std::string& point) const = 0;
  // Points whose values are rows of an embedding table (quantized with the table's weight scale), per model.
  virtual std::map<std::string, at::Tensor> w8a8_lookups(const TaskModel& model) const = 0;
  // The point feeding each Linear, for real INT8 Linears; empty where the task has no INT8 path.
  virtual std::function<std::string(const std::string&)> int8_input_point() const { return {}; }

  const train::TrainOptions& train_options() const { return train_; }
  const EvaluationOptions& evaluation() const { return evaluation_; }
  const nlohmann::json& resolved() const { return resolved_; }  // the task's config with every default filled in

 protected:
  train::TrainOptions train_;
  EvaluationOptions evaluation_;
  nlohmann::json resolved_;
};

// Reads one task entry of a config (task: lm | bert | vit | stanhop | marker-copy, with model / data / train / eval
// sections) and loads its data. data_dir: where ../shared/data-style datasets live; cache_dir: where a task keeps what
// it derives from the data (a trained sentencepiece model; empty: the system's temporary directory).
std::unique_ptr<Task> make_task(ConfigReader config, const std::string& data_dir, const std::string& cache_dir = "");

// A saved run's resolved task config, ready for make_task. A resolved config names data.held_out only when it is above
// 0 (so that runs from before held_out existed keep theirs), so its absence means nothing was held out - not the
// default of a config written by hand, which would evaluate the model on "held-out" text it trained on.
nlohmann::json saved_task_config(nlohmann::json resolved);

// The label of the task a config entry makes (Task::label(): "opt-books", "vit-cifar10", "stanhop-etth1-24", ...), from
// the entry alone: no data is read, so `experiment --task` picks its tasks before loading any.
std::string task_label(ConfigReader config);
// The data defaults a label depends on, shared by task_label and the tasks.
inline constexpr const char* kDefaultImageDataset = "fashion-mnist";
inline constexpr const char* kDefaultSeriesDataset = "etth1";
inline constexpr int64_t kDefaultHorizon = 24;

// The model of a resolved task config (Task::resolved(), also saved in every checkpoint's "config" metadata) with an
// attention variant, built without loading any data: for evaluating and inspecting saved models.
TaskModel build_model(const nlohmann::json& task_config, const std::string& variant);

// Shared by the tasks: the model section (every key of `defaults`, each with the type of its default), resolved;
// and the train / eval sections of a task config, into the task's options and resolved config.
nlohmann::json read_model_options(ConfigReader config, const nlohmann::json& defaults);
// The model keys every transformer task has (d_model, layers = 2, heads = 4, d_ff, dropouts 0, init_std 0.02), as
// defaults for read_model_options.
nlohmann::json transformer_model_defaults(int64_t d_model, int64_t d_ff);
// batch: its default in, the configured value (>= 1) out; resolved gets it with the trainer's options.
void read_train_options(ConfigReader config, train::TrainOptions& train, int64_t& batch, nlohmann::json& resolved);
void read_evaluation_options(ConfigReader config, EvaluationOptions& evaluation, nlohmann::json& resolved);
// The books' held-out fraction of the lm and bert tasks: data.held_out, in [0, 0.5], 0.02 unless given (read before
// the data section's finish()); recorded in the resolved data section only when above 0 (see saved_task_config).
double read_held_out(ConfigReader& data);
void record_held_out(double held_out, nlohmann::json& data_json);

}  // namespace outeffhop::experiment
