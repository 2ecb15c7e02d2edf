// The experiment runner: for every task of a config, every attention variant and seed, train (checkpointing the full
// training state every few steps, resuming from it exactly, tracking the outlier statistics), then evaluate in FP32,
// emulated FP16 and BF16, simulated W8A8 and, where the task has one, real INT8 (evaluation.h), and write each run's
// result. Runs with a result are skipped when the experiment is run again. Their summary: results_table.h.
#pragma once
#include <c10/core/Device.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
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
// What run_one throws when another process holds the run's lock: the runner skips such a run (processes that start
// together can both find a run free and then race for its lock), where any other error stops it.
struct RunInUse : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One variant and seed of a task in run_dir: returns the result (also written to run_dir/result.json), or nothing
// when stop_requested() said so during training (the state is saved; calling again resumes). A finished run's
// result is read back without any work. Throws RunInUse when another process holds the run's lock.
std::optional<nlohmann::json> run_one(const Task& task, const std::string& variant, int64_t seed,
                                      const std::string& run_dir, const RunOptions& options,
                                      const std::function<bool()>& stop_requested = {});

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
