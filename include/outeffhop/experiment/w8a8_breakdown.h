// Where a model's W8A8 cost goes: the W8A8 evaluation repeated with one kind of activation point left in float at a
// time. A kind is a point's name with its layer numbers replaced by `*` (model.decoder.layers.*.self_attn.attn_scores),
// so one evaluation frees the same point in every layer.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "outeffhop/experiment/evaluation.h"

namespace outeffhop::experiment {

// The point's name with every all-digit component replaced by `*`.
std::string point_kind(const std::string& point);

// The measure of what W8A8 costs against FP32 in an evaluation result: "kl" (class logits) or "output_change" (values).
const char* w8a8_cost(const Task& task);

// result["full"]: evaluate_model's result with every point quantized (options.keep_float is ignored);
// result["kinds"]: for each kind that W8A8 quantizes, {"kind", "points" (how many), "w8a8" (the task's W8A8 measures
// against FP32 with that kind in float), "extra" (the same on each further evaluation set)}, the largest saving first
// (smallest KL, or output change for value tasks).
nlohmann::json w8a8_breakdown(const Task& task, TaskModel& model, EvaluateOptions options);

}  // namespace outeffhop::experiment
