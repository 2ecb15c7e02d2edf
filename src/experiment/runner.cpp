// The experiment runner (see runner.h).
#include "outeffhop/experiment/runner.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/loss.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "outeffhop/experiment/evaluation.h"
#include "outeffhop/nn/attention_variant.h"
#include "outeffhop/safetensors.h"
#include "outeffhop/training_state.h"

namespace outeffhop::experiment {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

// cpu, cuda or cuda:N; nothing for any other name.
std::optional<at::Device> parse_device(const std::string& name) {
  try {
    const at::Device device(name);
    if (device.is_cpu() || device.is_cuda()) return device;
  } catch (const c10::Error&) {
  }
  return std::nullopt;
}

// Keeps the tracking lines of steps <= step (a resumed run rewrites what came after its checkpoint).
void truncate_tracking(const std::string& path, int64_t step) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    const auto entry = json::parse(line, nullptr, /*allow_exceptions=*/false);  // a line cut by a crash is dropped
    if (entry.is_object() && entry.value("step", int64_t{0}) <= step) kept += line + "\n";
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  TORCH_CHECK(in, path, ": cannot read");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    TORCH_CHECK(false, path, ": not valid JSON (", e.what(), "); delete it to redo the run");
  }
}

void write_json(const std::string& path, const json& j) {  // atomically: a result file is complete or absent
  const auto tmp = path + ".tmp";
  std::ofstream(tmp) << j.dump(1) << "\n";
  fs::rename(tmp, path);
}

// Validation-based early stopping (EvaluationOptions::validate_every, patience): every check is a line of
// validation.jsonl, the best model so far is kept in best.safetensors (with its step and loss), and the counters
// travel in the training state's metadata across resumes.
class EarlyStopping {
 public:
  EarlyStopping(const Task& task, const std::string& run_dir, int64_t first_step, ToModel to_model)
      : task_(task),
        path_(run_dir + "/best.safetensors"),
        every_(task.evaluation().validate_every),
        to_model_(std::move(to_model)) {
    if (every_ == 0) return;
    const auto log_path = run_dir + "/validation.jsonl";
    truncate_tracking(log_path, first_step);
    log_.open(log_path, std::ios::app);
  }

  void resume(const std::map<std::string, std::string>& metadata, const std::string& state_path) {
    if (metadata.count("best_validation_loss"))
      best_ = metadata_double(metadata, "best_validation_loss", state_path);
    if (metadata.count("checks_since_best")) since_best_ = metadata_int(metadata, "checks_since_best", state_path);
  }
  void save(std::map<std::string, std::string>& metadata) const {
    if (every_ == 0) return;
    char best[32];
    std::snprintf(best, sizeof best, "%.17g", best_);
    metadata["best_validation_loss"] = best;
    metadata["checks_since_best"] = std::to_string(since_best_);
  }
  void check(TaskModel& model, int64_t step, const std::string& tag) {
    if (every_ == 0 || step % every_ != 0) return;
    const double loss =
        evaluate_batches(task_, model, task_.validation_batches(), nullptr, nullptr, to_model_)["loss"].get<double>();
    model.module->train();
    const bool better = loss < best_;
    if (better) {
      best_ = loss, since_best_ = 0;
      save_module(path_, *model.module, {{"step", std::to_string(step)}, {"validation_loss", std::to_string(loss)}});
    } else {
      ++since_best_;
    }
    log_ << json{{"step", step}, {"validation_loss", loss}, {"best", better}}.dump() << std::endl;
    std::fprintf(stderr, "%s step %lld  validation loss %.5f%s\n", tag.c_str(), static_cast<long long>(step), loss,
                 better ? "  (best)" : "");
    stopped_ = since_best_ >= task_.evaluation().patience;
    if (stopped_)
      std::fprintf(stderr, "%s early stop: %lld checks without improvement\n", tag.c_str(),
                   static_cast<long long>(since_best_));
  }
  bool stopped() const { return stopped_; }
  void restore_best(torch::nn::Module& module) const {
    if (every_ > 0 && fs::exists(path_)) load_module(path_, module);
  }

 private:
  const Task& task_;
  std::string path_;
  int64_t every_;
  ToModel to_model_;
  double best_ = INFINITY;
  int64_t since_best_ = 0;
  bool stopped_ = false;
  std::ofstream log_;
};

// A forecasting task's first test window, for a figure: input, target and the model's prediction (time x series).
json forecast_sample(const Task& task, TaskModel& model) {
  torch::NoGradGuard no_grad;
  model.module->eval();
  const auto& batch = task.eval_batches().front();
  const auto input = batch.input.slice(0, 0, 1);
  auto rows = [](const at::Tensor& t) {
    const auto d = t.to(at::kDouble).contiguous();
    std::vector<std::vector<double>> out;
    for (int64_t i = 0; i < d.size(0); ++i)
      out.emplace_back(d[i].data_ptr<double>(), d[i].data_ptr<double>() + d.size(1));
    return out;
  };
  return {{"input", rows(input[0])}, {"target", rows(batch.target[0])}, {"prediction", rows(model.logits(input)[0])}};
}

// What a run's files record as its config: a result or checkpoint made with another one is never mixed in.
json run_config(const Task& task, const std::string& variant, int64_t seed) {
  return {{"task", task.resolved()}, {"variant", variant}, {"seed", seed}};
}

// A finished run's result, checked to come from this config (remedy: what to do when it does not).
json read_result(const std::string& path, const json& config, const std::string& remedy) {
  auto result = read_json(path);
  TORCH_CHECK(result.contains("config") && result["config"].dump() == config.dump(), path,
              ": made with a different config; ", remedy);
  return result;
}

// The temporary name is the copier's own (process id and a per-process count): processes sharing an experiment
// archive the same finished runs when they start, and one shared ".tmp" made the second rename fail.
void copy_atomically(const std::string& from, const std::string& to) {
  static std::atomic<uint64_t> count{0};
  const auto tmp = to + ".tmp." + std::to_string(getpid()) + "." + std::to_string(count++);
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, to);
}

json best_model_json(const std::string& path) {  // a best.safetensors' step and loss
  const auto m = load_safetensors(path).metadata;
  return {{"best_step", metadata_int(m, "step", path)},
          {"best_validation_loss", metadata_double(m, "validation_loss", path)}};
}

}  // namespace

ExperimentConfig read_experiment(ConfigReader c) {
  ExperimentConfig e;
  e.name = c.required<std::string>("name");
  e.description = c.get<std::string>("description", "");
  e.variants = c.get<std::vector<std::string>>("variants", {"softmax", "softmax1"});
  e.seeds = c.get<std::vector<int64_t>>("seeds", {0});
  e.run.checkpoint_every = c.get("checkpoint_every", e.run.checkpoint_every);
  e.run.log_every = c.get("log_every", e.run.log_every);
  e.run.time_int8 = c.get("time_int8", e.run.time_int8);
  e.run.eager_attention = c.get("eager_attention", e.run.eager_attention);
  e.run.device = c.get("device", e.run.device);
  // Whether this machine has it is checked when a run starts (a report needs no GPU).
  if (!parse_device(e.run.device)) c.fail("device", "must be cpu, cuda or cuda:N");
  if (e.variants.empty() || e.seeds.empty()) c.fail("", "needs at least one variant and one seed");
  if (e.run.checkpoint_every < 1 || e.run.log_every < 1) c.fail("", "needs checkpoint_every and log_every >= 1");
  const auto tasks = c.required<json>("tasks");
  if (!tasks.is_array() || tasks.empty()) c.fail("tasks", "must be a non-empty list");
  for (size_t i = 0; i < tasks.size(); ++i) {
    TaskEntry entry{tasks[i], e.variants};
    if (tasks[i].is_object() && tasks[i].contains("variants")) {
      const auto& list = tasks[i]["variants"];
      if (!list.is_array() || list.empty() ||
          !std::all_of(list.begin(), list.end(), [](const json& v) { return v.is_string(); }))
        c.fail("tasks." + std::to_string(i) + ".variants", "must be a non-empty list of variant names");
      entry.variants = list.get<std::vector<std::string>>();
      entry.config.erase("variants");
    }
    for (const auto& v : entry.variants) nn::parse_attention_variant(v);  // fail before any training
    e.tasks.push_back(std::move(entry));
  }
  c.finish();
  e.resolved = {{"name", e.name},
                {"description", e.description},
                {"variants", e.variants},
                {"seeds", e.seeds},
                {"checkpoint_every", e.run.checkpoint_every},
                {"log_every", e.run.log_every},
                {"time_int8", e.run.time_int8},
                {"eager_attention", e.run.eager_attention},
                {"device", e.run.device},
                {"tasks", tasks}};
  return e;
}

at::Device available_device(const std::string& name) {
  const auto device = parse_device(name);
  TORCH_CHECK(device, "device '", name, "' is not a device: expected cpu, cuda or cuda:N");
  const bool present = device->is_cpu() || (at::hasCUDA() && device->index() < static_cast<int64_t>(at::getNumGPUs()));
  TORCH_CHECK(present, "device '", name, "' is not available on this machine (no usable CUDA GPU of that index)");
  return *device;
}

std::string run_name(const std::string& variant, int64_t seed) {
  std::string name;
  for (const char ch : variant)
    name += std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ? ch : '_';
  return name + "-seed" + std::to_string(seed);
}

std::optional<RunLock> RunLock::try_acquire(const std::string& run_dir) {
  fs::create_directories(run_dir);
  const auto path = run_dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  TORCH_CHECK(fd >= 0, path, ": cannot open the run's lock file");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  return RunLock(fd);
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
}

bool run_in_use(const std::string& run_dir) {  // creates nothing: a run never locked has no lock file
  const auto path = run_dir + "/lock";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);
  return held;
}

std::optional<json> run_one(const Task& task, const std::string& variant, int64_t seed, const std::string& run_dir,
                            const RunOptions& options, const std::function<bool()>& stop_requested) {
  const auto result_path = run_dir + "/result.json", state_path = run_dir + "/state.safetensors",
             model_path = run_dir + "/model.safetensors", tracking_path = run_dir + "/tracking.jsonl";
  // Appended piecewise: GCC 12 warns falsely (-Wstringop-overflow) on the one-expression concatenation.
  std::string tag = "[";
  tag.append(task.label()).append(" ").append(variant).append(" seed ").append(std::to_string(seed)).append("]");
  const json config = run_config(task, variant, seed);
  auto done_before = [&] {
    std::fprintf(stderr, "%s done before: %s\n", tag.c_str(), result_path.c_str());
    return read_result(result_path, config, "delete " + run_dir + " to run it again");
  };
  if (fs::exists(result_path)) return done_before();
  const auto device = available_device(options.device);
  const auto lock = RunLock::try_acquire(run_dir);
  if (!lock) throw RunInUse(run_dir + ": another process is working on this run now; wait for it to finish or stop it");
  if (fs::exists(result_path)) return done_before();  // finished by another process just before the lock was ours
  const std::map<std::string, std::string> metadata = {{"config", config.dump()}};

  at::manual_seed(seed);
  auto model = task.build(variant);
  auto points = std::make_shared<nn::ActivationPoints>();
  model.set_points(points);
  auto data_gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed) + 1000);
  const std::map<std::string, at::Generator> generators = {{"data", data_gen},
                                                           {"torch", at::detail::getDefaultCPUGenerator()}};
  const auto& t = task.train_options();
  auto optimizer = train::make_adamw(*model.module, t);
  const auto to_device = [device](const at::Tensor& x) { return x.to(device); };
  double train_seconds = 0;
  if (fs::exists(model_path)) {  // trained before; only the evaluation is missing
    const auto saved = load_module(model_path, *model.module);
    TORCH_CHECK(saved.count("config") && saved.at("config") == config.dump(), model_path,
                ": saved with a different config; delete ", run_dir, " to start this run again");
    std::fprintf(stderr, "%s trained before; evaluating %s\n", tag.c_str(), model_path.c_str());
  } else {
    int64_t first = 0;
    std::map<std::string, std::string> resumed_metadata;
    if (fs::exists(state_path)) {
      const auto state = train::load_training_state(state_path, *model.module, *optimizer, generators);
      resumed_metadata = state.metadata;
      TORCH_CHECK(state.metadata.count("config") && state.metadata.at("config") == config.dump(), state_path,
                  ": saved with a different config; delete ", run_dir, " to start this run again");
      first = state.step;
      std::fprintf(stderr, "%s resuming at step %lld of %lld\n", tag.c_str(), static_cast<long long>(first),
                   static_cast<long long>(t.steps));
    }
    truncate_tracking(tracking_path, first);  // also the lines of an attempt killed before its first checkpoint
    std::ofstream tracking(tracking_path, std::ios::app);
    // Module::to keeps each parameter's identity, so the optimizer follows. A GPU's dropout draws from its own
    // generator, which the training state does not hold: a resumed GPU run with dropout is not bit-identical.
    model.module->to(device);
    EarlyStopping early(task, run_dir, first, to_device);
    early.resume(resumed_metadata, state_path);
    if (options.eager_attention) use_eager_attention(*points);
    const int64_t track_every = task.evaluation().track_every;
    const auto start = std::chrono::steady_clock::now();
    auto save_state = [&](int64_t step) {
      auto m = metadata;
      early.save(m);
      train::save_training_state(state_path, *model.module, *optimizer, step, generators, m);
    };
    const int64_t done = train::train(
        *model.module, *optimizer, t,
        [&](int64_t) {
          const auto batch = task.train_batch(data_gen);
          const auto output = model.logits(batch.input.to(device));
          const auto target = batch.target.to(device);
          if (task.regression()) return at::mse_loss(output, target);
          return torch::nn::functional::cross_entropy(
              output.reshape({-1, output.size(-1)}), target,
              torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(task.label_smoothing()));
        },
        [&](const train::StepReport& r) {
          const bool last = r.step == t.steps;
          if (track_every > 0 && (r.step % track_every == 0 || last || r.step == 1)) {
            auto line = track_outliers(task, model, points, device);
            line.update({{"variant", variant}, {"seed", seed}, {"step", r.step}, {"loss", r.loss}, {"lr", r.lr}});
            tracking << line.dump() << std::endl;  // flushed: the curve survives an interruption
          }
          early.check(model, r.step, tag);
          if (r.step % options.checkpoint_every == 0 && !last) save_state(r.step);
          if (r.step % options.log_every == 0 || last) {
            const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const double rate = static_cast<double>(r.step - first) / elapsed;
            std::fprintf(stderr, "%s step %lld/%lld  loss %.4f  lr %.2e  %.2f steps/s  eta %.0fs\n", tag.c_str(),
                         static_cast<long long>(r.step), static_cast<long long>(t.steps), r.loss, r.lr, rate,
                         static_cast<double>(t.steps - r.step) / rate);
          }
        },
        first, [&] { return early.stopped() || (stop_requested && stop_requested()); });
    train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (done < t.steps && !early.stopped()) {
      save_state(done);
      std::fprintf(stderr, "%s stopped at step %lld; the state is in %s (run the same command to resume)\n",
                   tag.c_str(), static_cast<long long>(done), state_path.c_str());
      return std::nullopt;
    }
    save_state(done);
    model.module->to(at::kCPU);
    early.restore_best(*model.module);
    save_module(model_path, *model.module, metadata);
    if (first > 0) train_seconds = -1;  // split over sessions: not a throughput figure
  }
  const auto& e = task.evaluation();
  std::fprintf(stderr, "%s evaluating: FP32, FP16, BF16, %s%s\n", tag.c_str(), e.widths().c_str(),
               task.int8_input_point() && e.real_int8() ? ", INT8" : "");
  EvaluateOptions evaluate_options;
  evaluate_options.calibration_seed = static_cast<uint64_t>(seed) + 2000;
  evaluate_options.time_int8 = options.time_int8;
  if (device.is_cuda()) evaluate_options.native_half = device;
  auto result = evaluate_model(task, model, evaluate_options);
  note_constant_zero_points(tag, result);
  result.update({{"task", task.label()}, {"variant", variant}, {"seed", seed}, {"config", config}});
  if (fs::exists(run_dir + "/best.safetensors"))
    result["early_stopping"] = best_model_json(run_dir + "/best.safetensors");
  if (task.regression()) result["forecast_sample"] = forecast_sample(task, model);
  if (train_seconds > 0) result["train_seconds"] = train_seconds;
  write_json(result_path, result);
  return result;
}

void archive_run(const std::string& run_dir, const std::string& archive_run_dir) {
  TORCH_CHECK(fs::exists(run_dir + "/result.json"), run_dir, ": not finished; nothing to archive");
  fs::create_directories(archive_run_dir);
  // The result last: it marks the archived run complete.
  for (const auto* file : {"tracking.jsonl", "validation.jsonl", "result.json"})
    if (fs::exists(run_dir + "/" + file)) copy_atomically(run_dir + "/" + file, archive_run_dir + "/" + file);
}

std::optional<json> archived_result(const Task& task, const std::string& variant, int64_t seed,
                                    const std::string& archive_run_dir) {
  const auto path = archive_run_dir + "/result.json";
  if (!fs::exists(path)) return std::nullopt;
  return read_result(path, run_config(task, variant, seed),
                     "remove " + archive_run_dir + " or give the experiment another name to run it again");
}

RunStatus run_status(const std::string& run_dir, const std::string& archive_run_dir) {
  RunStatus status;
  auto finished = [&](const std::string& path, RunStatus::State state) {
    status.state = state;
    if (const auto result = read_json(path); result.contains("train_seconds"))
      status.train_seconds = result["train_seconds"].get<double>();
    return status;
  };
  if (fs::exists(run_dir + "/result.json")) return finished(run_dir + "/result.json", RunStatus::State::kFinished);
  if (!archive_run_dir.empty() && fs::exists(archive_run_dir + "/result.json"))
    return finished(archive_run_dir + "/result.json", RunStatus::State::kArchived);
  status.in_use = run_in_use(run_dir);
  if (fs::exists(run_dir + "/model.safetensors")) {
    status.state = RunStatus::State::kTrained;
  } else if (fs::exists(run_dir + "/state.safetensors")) {
    const auto path = run_dir + "/state.safetensors";
    const auto metadata = read_safetensors_metadata(path);
    TORCH_CHECK(metadata.count("config"), path, ": no config in its metadata");
    status.state = RunStatus::State::kTraining;
    status.step = metadata_int(metadata, "step", path);
    const auto config = json::parse(metadata.at("config"));
    status.steps = config.value(json::json_pointer("/task/train/steps"), int64_t{0});
  }
  return status;
}

}  // namespace outeffhop::experiment
