// A trained model evaluated: its task's loss and measures over batches, and evaluate_model, the full evaluation that
// every finished run records (FP32 with the paper's outlier statistics, then reduced precisions against FP32).
#pragma once
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "outeffhop/experiment/task.h"
#include "outeffhop/nn/activation_points.h"

namespace outeffhop::experiment {

// Moves a model input to where the model is (its device; its type when it runs natively in half precision).
using ToModel = std::function<at::Tensor(const at::Tensor&)>;

// Means over batches (weighted by their rows) of the loss and the task's measures, and against reference outputs how
// far this model's are from them. Class logits: accuracy; KL(ref || this) per prediction and how often both put
// their top-1 on the same class. Values (forecasting): MSE (the loss) and MAE; the relative change ||y - y_ref|| /
// ||y_ref||. outputs_out receives what a later call compares with (log-probabilities or values).
nlohmann::json evaluate_batches(const Task& task, TaskModel& model, const std::vector<Batch>& batches,
                                const std::vector<at::Tensor>* reference,
                                std::vector<at::Tensor>* outputs_out = nullptr, const ToModel& to_model = {});

// An identity transform on the points makes every attention take its eager path and materialise its scores and
// probabilities (the fused kernels form neither).
void use_eager_attention(nn::ActivationPoints& points);

// Outlier statistics (avg kurtosis, max inf-norm, per layer) of the model on the first evaluation batch, for the
// curves over training; leaves the model in training mode.
nlohmann::json track_outliers(const Task& task, TaskModel& model, const nn::ActivationPointsPtr& points,
                              at::Device device);

// What repeated evaluations of one model with the same options (eval --w8a8-breakdown: one per kind of point left in
// float) can share instead of recomputing: the FP32 outputs the reduced precisions are measured against, and the
// W8A8 ranges (calibration passes values unchanged, so they do not depend on which points W8A8 leaves in float).
struct EvaluationCache {
  std::vector<at::Tensor> outputs;                               // FP32, per evaluation batch
  std::map<std::string, std::vector<at::Tensor>> extra_outputs;  // FP32, per further evaluation set, per batch
  std::vector<std::pair<std::string, at::Tensor>> probe_points;  // FP32, every activation point on a probe input
  std::vector<std::pair<std::string, std::pair<double, double>>> w8a8_ranges;  // from a calibration of every point
};

struct EvaluateOptions {
  std::vector<std::string> precisions = {"fp32", "fp16", "bf16", "w8a8", "int8"};  // FP32 is always evaluated
  uint64_t calibration_seed = 2000;  // draws the W8A8 calibration batches from the training data
  bool time_int8 = true;             // time one forward pass in FP32 and with INT8 Linears
  std::function<bool(const std::string&)> keep_float;  // activation points W8A8 leaves in float (empty: none)
  std::function<bool(const std::string&)> keep_float_weights;  // weights, by their module's name (empty: none)
  std::optional<at::Device> native_half;  // FP16/BF16 run natively on this device (a GPU); unset: emulated on CPU
  bool extra_sets = true;  // also the task's further evaluation sets (Task::extra_evaluations: the held-out books)
  // Not null: what this evaluation takes from earlier ones of the same model and options, and leaves for later ones.
  // With FP32 outputs there, the FP32 passes are skipped, and with them the result's "fp32", "outliers" and
  // "attention" entries; with W8A8 ranges there, the calibration. An evaluation that leaves points in float stores
  // no ranges.
  EvaluationCache* cache = nullptr;
};
// A trained model on the task's evaluation batches: FP32 with the outlier statistics (result["outliers"]: avg
// kurtosis, max inf-norm, per module and per layer), then each precision asked for, with the KL divergence and
// top-1 agreement against FP32: "fp16"/"bf16" (emulated, or native on options.native_half), "w8a8" (simulated,
// with per-point relative errors), "int8" (real INT8 Linears where the task has them; with forward timings); and
// result["outliers"]["peaks"]: where each module's largest activation sits; and result["extra"][name]["fp32" /
// "w8a8"]: the task's further evaluation sets (Task::extra_evaluations), with the same W8A8 ranges.
// result["attention"]: per attention layer, the mean row mass of its probabilities, the share of rows below one
// half and the mean mass on the first key (analysis/attention_use.h).
// result["constant_zero_points"]: the calibrated points that were exactly 0 on every calibration batch, if any.
nlohmann::json evaluate_model(const Task& task, TaskModel& model, const EvaluateOptions& options);
// A console note naming evaluate_model's constant-zero points (nothing when there are none), prefixed with `tag`.
void note_constant_zero_points(const std::string& tag, const nlohmann::json& result);

}  // namespace outeffhop::experiment
