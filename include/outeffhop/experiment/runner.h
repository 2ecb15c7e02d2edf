// The experiment runner: for every task of a config, every attention variant and seed, train (checkpointing the full
// training state every few steps, resuming from it exactly, tracking the outlier statistics), then evaluate in FP32,
// emulated FP16 and BF16, simulated W8A8 and, where the task has one, real INT8, and write each run's result. Runs
// with a result are skipped when the experiment is run again. The summary is the paper's Table 1 layout (mean ± std
// over seeds) plus figures.
#pragma once
#include <c10/core/Device.h>
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
  bool eager_attention = false;    // train through the materialised softmax_n composite, not the fused kernel (timing)
  // Where training runs: cpu, cuda or cuda:N. Evaluation runs on CPU (W8A8, real INT8 and the saved files are the
  // same whichever device trained), except FP16/BF16, which run natively on a GPU when training used one.
  std::string device = "cpu";
};

// The device named (cpu, cuda, cuda:N); a clear error when the name is not a device or this machine lacks it.
at::Device available_device(const std::string& name);

struct TaskEntry {
  nlohmann::json config;              // read by make_task
  std::vector<std::string> variants;  // the task's own "variants", or the experiment's
};

struct ExperimentConfig {
  std::string name, description;
  std::vector<std::string> variants;
  std::vector<int64_t> seeds;
  RunOptions run;
  std::vector<TaskEntry> tasks;
  nlohmann::json resolved;  // the whole config with defaults filled in (tasks as given)
};
ExperimentConfig read_experiment(ConfigReader config);

// Held by the process working on a run: an advisory lock (flock) on RUN_DIR/lock, which the system releases when the
// process ends, however it ends. run_one takes it, so that two processes never train one run at once; the runner
// skips a run another process holds, so that several processes can share one experiment's runs.
class RunLock {
 public:
  // The lock, or nothing when another process (or another RunLock) holds it. Creates run_dir when needed.
  static std::optional<RunLock> try_acquire(const std::string& run_dir);
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&&) = delete;
  ~RunLock();

 private:
  explicit RunLock(int fd) : fd_(fd) {}
  int fd_;
};
// Whether some process holds the run's lock now; creates nothing.
bool run_in_use(const std::string& run_dir);

// One variant and seed of a task in run_dir: returns the result (also written to run_dir/result.json), or nothing
// when stop_requested() said so during training (the state is saved; calling again resumes). A finished run's
// result is read back without any work. Throws when another process holds the run's lock.
std::optional<nlohmann::json> run_one(const Task& task, const std::string& variant, int64_t seed,
                                      const std::string& run_dir, const RunOptions& options,
                                      const std::function<bool()>& stop_requested = {});

struct EvaluateOptions {
  std::vector<std::string> precisions = {"fp32", "fp16", "bf16", "w8a8", "int8"};  // FP32 is always evaluated
  uint64_t calibration_seed = 2000;  // draws the W8A8 calibration batches from the training data
  bool time_int8 = true;             // time one forward pass in FP32 and with INT8 Linears
  std::function<bool(const std::string&)> keep_float;  // activation points W8A8 leaves in float (empty: none)
  std::optional<at::Device> native_half;  // FP16/BF16 run natively on this device (a GPU); unset: emulated on CPU
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

// The markdown table of a task's results (one row per variant, mean ± std over seeds).
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
// outliers.png): a list of tasks {task, baseline, variants: [{variant, column, seeds, max_inf_norm, avg_kurtosis,
// w8a8_kl_mnats (where every run has a KL)}]}, each measure the differences variant − baseline over `seeds`, the seeds
// both have; variants and tasks without a pair are left out. `column` is the variant's family (the name before "(",
// so clipped(-1e-5,1) and clipped(-0.09375,1) share one); a task's second variant of one family keeps its full name.
nlohmann::json paired_outliers(const std::vector<std::string>& tasks,
                               const std::vector<std::vector<nlohmann::json>>& results,
                               const std::vector<std::vector<std::string>>& variants);
// Those tasks side by side: for max inf-norm, for avg kurtosis and for the W8A8 KL (tasks that have one) a table with
// a row per task and a column per `column`, each cell the mean ± std of the differences and in how many seeds the
// variant is lower, as paired_table. Empty when no task has a pair.
std::string outlier_summary_tables(const nlohmann::json& paired);

// A results archive: each finished run's result.json, tracking.jsonl and validation.jsonl (text, tens of KB) under
// ARCHIVE/NAME/TASK/RUN, meant to be committed with the project, so that runs made on machines whose runs dirs do not
// last add up across them. archive_run copies a finished run there (atomically, file by file); archived_result reads
// one back: nothing when the archive lacks it, an error naming the file when it was made with another config.
void archive_run(const std::string& run_dir, const std::string& archive_run_dir);
std::optional<nlohmann::json> archived_result(const Task& task, const std::string& variant, int64_t seed,
                                              const std::string& archive_run_dir);

// Where one run stands, from its files alone (nothing loaded beyond a checkpoint's header, no data read): finished
// (a result.json in run_dir, or only in archive_run_dir when that is given), trained but not evaluated
// (model.safetensors), part-trained (state.safetensors: the steps done of the run's total), or not started.
struct RunStatus {
  enum class State { kNotStarted, kTraining, kTrained, kFinished, kArchived } state = State::kNotStarted;
  int64_t step = 0, steps = 0;          // kTraining: steps done and the run's total (0: not in its config)
  std::optional<double> train_seconds;  // finished: the training time, when the run trained in one go
  bool in_use = false;                  // a process holds the run's lock: it is training or evaluating now
};
RunStatus run_status(const std::string& run_dir, const std::string& archive_run_dir = "");

// A file-system-safe name for a variant ("clipped(-0.025,1)" -> "clipped_-0.025_1_").
std::string run_name(const std::string& variant, int64_t seed);

}  // namespace outeffhop::experiment
