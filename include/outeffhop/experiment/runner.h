// The experiment runner: for every task of a config, every attention variant and seed, train (checkpointing the full
// training state every few steps, resuming from it exactly, tracking the outlier statistics), then evaluate in FP32,
// emulated FP16 and BF16, simulated W8A8 and, where the task has one, real INT8, and write each run's result. Runs
// with a result are skipped when the experiment is run again. The summary is the paper's Table 1 layout (mean ± std
// over seeds) plus figures.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "outeffhop/experiment/config.h"
#include "outeffhop/experiment/task.h"

namespace outeffhop::experiment {

struct RunOptions {
  int64_t checkpoint_every = 200;  // training state saved every K steps (and on a stop request)
  int64_t log_every = 25;          // progress line every K steps
  bool time_int8 = true;           // time one forward pass in FP32 and with INT8 Linears
};

struct ExperimentConfig {
  std::string name, description;
  std::vector<std::string> variants;
  std::vector<int64_t> seeds;
  RunOptions run;
  std::vector<nlohmann::json> tasks;  // each read by make_task
  nlohmann::json resolved;            // the whole config with defaults filled in (tasks as given)
};
ExperimentConfig read_experiment(ConfigReader config);

// One variant and seed of a task in run_dir: returns the result (also written to run_dir/result.json), or nothing
// when stop_requested() said so during training (the state is saved; calling again resumes). A finished run's
// result is read back without any work.
std::optional<nlohmann::json> run_one(const Task& task, const std::string& variant, int64_t seed,
                                      const std::string& run_dir, const RunOptions& options,
                                      const std::function<bool()>& stop_requested = {});

// The markdown table of a task's results (one row per variant, mean ± std over seeds).
std::string results_table(const Task& task, const std::vector<nlohmann::json>& results,
                          const std::vector<std::string>& variants);

// A file-system-safe name for a variant ("clipped(-0.025,1)" -> "clipped_-0.025_1_").
std::string run_name(const std::string& variant, int64_t seed);

}  // namespace outeffhop::experiment
