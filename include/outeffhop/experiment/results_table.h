// The result tables of an experiment: a task's runs in the layout of the paper's Table 1 (Table 2 for forecasting),
// each variant against the baseline seed by seed, and the outliers of every task side by side.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "outeffhop/experiment/task.h"

namespace outeffhop::experiment {

// The markdown table of a task's results (one row per variant, mean ± std over seeds); the quantized columns name
// the scheme the results simulated ("W8A8", or what their "w8a8_bits" say).
std::string results_table(const Task& task, const std::vector<nlohmann::json>& results,
                          const std::vector<std::string>& variants);
// Each variant against the first of `variants` (the baseline, e.g. softmax), seed by seed over the seeds both have:
// mean ± std of the differences in the FP32 and W8A8 metric (named `metric`), the W8A8 KL from FP32 (where every result
// has one: not forecasts), avg kurtosis and max inf-norm, and in how many seeds the variant's value is lower. Pairing
// cancels what a seed does to both runs (data order, initialisation), so an effect smaller than the spread over seeds
// can still show. Empty when no pair exists.
std::string paired_table(const std::vector<nlohmann::json>& results, const std::vector<std::string>& variants,
                         const std::string& metric);

// Forecasting tasks side by side in the layout of the paper's Table 2: a row per task (`tasks[i]` names the runs
// `results[i]`), FP32 test MSE and MAE per variant as mean ± std over seeds, the lowest mean of each kind in a row in
// bold, "(n seeds)" where a variant has fewer seeds than the most any has in that row. Empty without results.
std::string forecast_summary_table(const std::vector<std::string>& tasks,
                                   const std::vector<std::vector<nlohmann::json>>& results,
                                   const std::vector<std::string>& variants);

// Each task's outliers and W8A8 KL against its baseline, seed by seed (written as outliers.json and plotted as
// outliers.png): a list of tasks {task, baseline, scheme (the quantization its runs simulated: "W8A8", "W4A8
// per-channel", ...; several joined by " / "), variants: [{variant, column, seeds, max_inf_norm, avg_kurtosis,
// w8a8_kl_mnats (where every run has a KL), extra_w8a8_kl_mnats: {set: ...} (the KL on each further evaluation set
// every run has, e.g. the held-out books)}]}, each measure the differences variant − baseline over `seeds`, the seeds
// both have; variants and tasks without a pair are left out. `column` is the variant's family (the name before "(",
// so clipped(-1e-5,1) and clipped(-0.09375,1) share one); a task's second variant of one family keeps its full name.
nlohmann::json paired_outliers(const std::vector<std::string>& tasks,
                               const std::vector<std::vector<nlohmann::json>>& results,
                               const std::vector<std::vector<std::string>>& variants);
// Those tasks side by side: for max inf-norm, for avg kurtosis and for each W8A8 KL (tasks that have it) a table with
// a row per task and a column per `column`, each cell the mean ± std of the differences and in how many seeds the
// variant is lower, as paired_table. Tables and columns name the tasks' scheme; tasks of different schemes make it
// "quantized", each row naming its own. Empty when no task has a pair.
std::string outlier_summary_tables(const nlohmann::json& paired);

}  // namespace outeffhop::experiment
