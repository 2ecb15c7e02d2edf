// `outeffhop experiment`: runs a YAML experiment config (configs/<name>.yaml) with the experiment runner: every task x
// attention variant x seed trained (resumable) and evaluated, then the paper's Table 1 (or, for forecasting, Table 2)
// layout and figures. --report builds them from the finished runs alone.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <nlohmann/json.hpp>

#include "build_config.h"
#include "commands.h"
#include "jobs.h"
#include "outeffhop/experiment/results_table.h"
#include "outeffhop/experiment/runner.h"
#include "plot.h"

namespace outeffhop::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::atomic<bool> stop_requested{false};

extern "C" void on_interrupt(int) {
  stop_requested = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

struct ExperimentArgs {
  std::string config, preset, runs_dir = "runs", data_dir = "../shared/data";
  std::string archive;  // finished runs are kept (and found) here too: ARCHIVE/NAME/TASK/RUN
  std::vector<std::string> overrides;
  std::vector<std::string> only_tasks;  // labels given with --task: the rest of the config's tasks are left alone
  bool dump_config = false;
  bool report = false;      // tables and figures from the finished runs only; nothing trains
  bool status = false;      // where each run stands, from the files alone; nothing trains, no data is read
  bool train_only = false;  // the runs alone: no tables, no figures (each --jobs process)
  int jobs = 1;             // processes training side by side (copies of this command), then the report
};

// A config file, or configs/PRESET.yaml; an unknown preset lists the ones there.
std::string config_path(const ExperimentArgs& a) {
  if (!a.config.empty()) return a.config;
  const auto dir = std::string(OUTEFFHOP_SOURCE_DIR) + "/configs";
  const auto path = dir + "/" + a.preset + ".yaml";
  if (!fs::exists(path)) {
    std::vector<std::string> presets;
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.path().extension() == ".yaml") presets.push_back(entry.path().stem().string());
    std::sort(presets.begin(), presets.end());
    std::string known;
    for (const auto& p : presets) known += (known.empty() ? "" : ", ") + p;
    TORCH_CHECK(false, "experiment: no preset '", a.preset, "' in ", dir, "; the presets are: ", known);
  }
  return path;
}

// The config's task entries whose labels were asked for (all of them when none were), in the config's order; an
// unknown label lists the known ones. Labels come from the entries alone, so the other tasks' data are never read.
std::vector<size_t> selected_tasks(const std::vector<std::string>& wanted, const std::vector<std::string>& labels) {
  std::string known;
  for (const auto& l : labels) known += (known.empty() ? "" : ", ") + l;
  for (const auto& label : wanted)
    TORCH_CHECK(std::find(labels.begin(), labels.end(), label) != labels.end(), "experiment: --task ", label,
                ": this config has no such task (it has ", known, ")");
  std::vector<size_t> kept;
  for (size_t i = 0; i < labels.size(); ++i)
    if (wanted.empty() || std::find(wanted.begin(), wanted.end(), labels[i]) != wanted.end()) kept.push_back(i);
  return kept;
}

// A run's folder in the runs dir and in the archive (empty without --archive): ROOT/NAME/TASK/VARIANT-seedK.
struct RunPaths {
  std::string dir, archive;
};
RunPaths run_paths(const ExperimentArgs& a, const std::string& experiment_name, const std::string& task_label,
                   const std::string& variant, int64_t seed) {
  const auto run = "/" + experiment_name + "/" + task_label + "/" + experiment::run_name(variant, seed);
  return {a.runs_dir + run, a.archive.empty() ? "" : a.archive + run};
}

std::string run_state(const experiment::RunStatus& s) {
  using State = experiment::RunStatus::State;
  switch (s.state) {
    case State::kFinished: return "finished";
    case State::kArchived: return "archived";
    case State::kTrained: return "trained, not evaluated";
    case State::kTraining:
      return "step " + std::to_string(s.step) + (s.steps > 0 ? "/" + std::to_string(s.steps) : std::string());
    case State::kNotStarted: break;
  }
  return "–";
}

// Per task, a variant x seed grid of where each run stands, the counts, and how long finished runs trained here.
void print_status(const experiment::ExperimentConfig& config, const std::vector<std::string>& labels,
                  const std::vector<size_t>& selected, const ExperimentArgs& a) {
  using State = experiment::RunStatus::State;
  const auto dir = a.runs_dir + "/" + config.name;
  std::cout << "# " << config.name << ": runs in " << dir
            << (a.archive.empty() ? "" : ", archive " + a.archive + "/" + config.name) << "\n";
  for (const auto i : selected) {
    std::string grid = "| variant |";
    for (const auto seed : config.seeds) grid += " seed " + std::to_string(seed) + " |";
    grid += "\n|---|";
    for (size_t k = 0; k < config.seeds.size(); ++k) grid += "---|";
    grid += "\n";
    std::map<State, int> counts;
    std::vector<double> minutes;
    double runs_left = 0;  // in whole runs: a part-trained one counts its steps still to do
    for (const auto& variant : config.tasks[i].variants) {
      grid += "| " + variant + " |";
      for (const auto seed : config.seeds) {
        const auto paths = run_paths(a, config.name, labels[i], variant, seed);
        const auto s = experiment::run_status(paths.dir, paths.archive);
        // Appended piecewise: GCC 12 warns falsely (-Wstringop-overflow) on the one-expression concatenation.
        grid.append(" ").append(run_state(s)).append(s.in_use ? " (running)" : "").append(" |");
        // A run whose first checkpoint is still to come has no step yet but is training all the same.
        ++counts[s.in_use && s.state == State::kNotStarted ? State::kTraining : s.state];
        if (s.train_seconds) minutes.push_back(*s.train_seconds / 60);
        if (s.state == State::kNotStarted) runs_left += 1;
        if (s.state == State::kTraining && s.steps > 0)
          runs_left += 1 - static_cast<double>(s.step) / static_cast<double>(s.steps);
      }
      grid += "\n";
    }
    std::string counted;  // the states some run is in, with how many
    for (const auto& [state, what] : {std::pair{State::kArchived, "of them from the archive"},
                                      std::pair{State::kTraining, "training or stopped part-way"},
                                      std::pair{State::kTrained, "trained, not evaluated"},
                                      std::pair{State::kNotStarted, "not started"}})
      if (counts[state] > 0) counted += ", " + std::to_string(counts[state]) + " " + what;
    std::cout << "\n## " << labels[i] << ": " << counts[State::kFinished] + counts[State::kArchived] << " of "
              << config.tasks[i].variants.size() * config.seeds.size() << " runs finished" << counted << "\n\n"
              << grid;
    if (!minutes.empty()) {
      std::sort(minutes.begin(), minutes.end());
      const double median = minutes[minutes.size() / 2];
      std::printf("\nTraining took %.1f min (median; %.1f-%.1f over the %zu runs that trained in one go)", median,
                  minutes.front(), minutes.back(), minutes.size());
      if (runs_left > 0)  // early stopping and another machine make this a rough guide
        std::printf("; what is left needs about %.1f h of training at that pace, in one process",
                    runs_left * median / 60);
      std::printf("\n");
    }
  }
}

// How many runs of the selected tasks are neither finished nor archived (from the run files alone).
size_t unfinished_runs(const experiment::ExperimentConfig& config, const std::vector<std::string>& labels,
                       const std::vector<size_t>& selected, const ExperimentArgs& a) {
  using State = experiment::RunStatus::State;
  size_t count = 0;
  for (const auto i : selected)
    for (const auto& variant : config.tasks[i].variants)
      for (const auto seed : config.seeds) {
        const auto paths = run_paths(a, config.name, labels[i], variant, seed);
        const auto state = experiment::run_status(paths.dir, paths.archive).state;
        count += state != State::kFinished && state != State::kArchived;
      }
  return count;
}

// --jobs: copies of this command (without --jobs) train the unfinished runs side by side, sharing them through the
// runs' locks, each with its share of the cores, making no tables (--train-only); their progress lines interleave on
// stderr. Returns how many copies failed; exits 130 on Ctrl-C or SIGTERM, once the copies have saved their state.
int train_in_copies(const ExperimentArgs& a, const std::string& path, size_t unfinished) {
  std::vector<std::string> args = {"experiment", "--config",   path,      "--runs-dir",
                                   a.runs_dir,   "--data-dir", a.data_dir, "--train-only"};
  for (const auto& o : a.overrides) args.insert(args.end(), {"--set", o});
  for (const auto& t : a.only_tasks) args.insert(args.end(), {"--task", t});
  if (!a.archive.empty()) args.insert(args.end(), {"--archive", a.archive});
  const int copies = static_cast<int>(std::min<size_t>(a.jobs, unfinished));
  const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / copies);
  const char* given_threads = std::getenv("OMP_NUM_THREADS");
  std::fprintf(stderr, "experiment: %zu unfinished runs, %d processes side by side (OMP_NUM_THREADS=%s each)\n",
               unfinished, copies, given_threads ? given_threads : std::to_string(threads).c_str());
  std::signal(SIGINT, on_interrupt);  // the copies get Ctrl-C too; this process waits for them to save
  const auto statuses = run_copies(args, copies, threads);
  // A copy stopped by Ctrl-C or a passed-on SIGTERM exits 130, its state saved.
  if (stop_requested || std::find(statuses.begin(), statuses.end(), 130) != statuses.end()) {
    std::fprintf(stderr, "experiment interrupted; run the same command to resume\n");
    std::exit(130);
  }
  int failed = 0;
  for (size_t i = 0; i < statuses.size(); ++i)
    if (statuses[i] != 0) {
      std::fprintf(stderr, "experiment: process %zu of %d ended with status %d (its error is above)\n", i + 1, copies,
                   statuses[i]);
      ++failed;
    }
  return failed;
}

void require_copies_succeeded(int failed_copies) {
  TORCH_CHECK(failed_copies == 0, "experiment: ", failed_copies,
              " of the --jobs processes failed (errors above); run the same command again to finish their runs");
}

void run(ExperimentArgs a) {
  const auto path = config_path(a);
  auto raw = experiment::load_yaml(path);
  for (const auto& o : a.overrides) experiment::apply_override(raw, o);
  auto config = experiment::read_experiment(experiment::ConfigReader(raw, path));
  auto reader = [&](size_t i) {
    return experiment::ConfigReader(config.tasks[i].config, path, "tasks." + std::to_string(i));
  };
  std::vector<std::string> labels;  // each task's runs live in a folder named by its label
  for (size_t i = 0; i < config.tasks.size(); ++i) {
    labels.push_back(experiment::task_label(reader(i)));
    TORCH_CHECK(std::count(labels.begin(), labels.end(), labels.back()) == 1, path, ": two tasks are both '",
                labels.back(), "'; put them in separate experiments (their runs would share one folder)");
  }
  if (a.status) return print_status(config, labels, selected_tasks(a.only_tasks, labels), a);
  int failed_copies = 0;
  if (a.jobs > 1 && !a.dump_config) {
    if (const auto unfinished = unfinished_runs(config, labels, selected_tasks(a.only_tasks, labels), a))
      failed_copies = train_in_copies(a, path, unfinished);
    a.report = true;  // nothing more trains here: the tables and figures of what finished, here and in the archive
  }
  std::vector<std::unique_ptr<experiment::Task>> tasks;
  std::vector<experiment::TaskEntry> entries;
  json resolved = config.resolved;
  resolved["tasks"] = json::array();
  for (const auto i : selected_tasks(a.only_tasks, labels)) {
    tasks.push_back(experiment::make_task(reader(i), a.data_dir, a.runs_dir + "/" + config.name));
    entries.push_back(config.tasks[i]);
    resolved["tasks"].push_back(tasks.back()->resolved());
    resolved["tasks"].back()["variants"] = config.tasks[i].variants;
  }
  config.tasks = std::move(entries);
  if (a.dump_config) {  // the whole config: every task, or those of --task
    std::cout << resolved.dump(2) << "\n";
    return;
  }
  const auto dir = a.runs_dir + "/" + config.name;
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << resolved.dump(2) << "\n";
  std::signal(SIGINT, on_interrupt);
  size_t total = 0;
  for (const auto& t : config.tasks) total += t.variants.size() * config.seeds.size();
  std::fprintf(stderr, "experiment %s: %zu runs in %s (Ctrl-C saves the state and stops; run again to resume)\n",
               config.name.c_str(), total, dir.c_str());

  std::string tables = "# " + config.name + (config.description.empty() ? "" : ": " + config.description) + "\n";
  // Forecasting tasks that compare the same variants also get one table side by side (the paper's Table 2).
  std::vector<std::string> forecast_labels;
  std::vector<std::vector<json>> forecast_results;
  std::vector<std::string> forecast_variants;  // the first forecasting task's
  bool same_forecast_variants = true;
  std::vector<std::string> finished_labels;  // every task with results, for the outlier summary
  std::vector<std::vector<json>> finished_results;
  std::vector<std::vector<std::string>> finished_variants;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const auto& task = tasks[i];
    std::vector<json> results;
    const auto task_dir = dir + "/" + task->label();
    // Where a run's files are: its runs-dir folder, or the archive's when only the archive has it finished.
    auto files_of = [&](const std::string& variant, int64_t seed) {
      const auto paths = run_paths(a, config.name, task->label(), variant, seed);
      const bool archived_only = !paths.archive.empty() && !fs::exists(paths.dir + "/result.json") &&
                                 fs::exists(paths.archive + "/result.json");
      return archived_only ? paths.archive : paths.dir;
    };
    for (const auto& variant : config.tasks[i].variants)
      for (const auto seed : config.seeds) {
        const auto [run_dir, archive_dir] = run_paths(a, config.name, task->label(), variant, seed);
        if (const auto files = files_of(variant, seed); files != run_dir) {
          results.push_back(*experiment::archived_result(*task, variant, seed, files));
          std::fprintf(stderr, "[%s %s seed %lld] finished before, from the archive: %s\n", task->label().c_str(),
                       variant.c_str(), static_cast<long long>(seed), files.c_str());
          continue;
        }
        if (a.report && !fs::exists(run_dir + "/result.json")) {
          std::fprintf(stderr, "[%s %s seed %lld] not finished; left out of the report\n", task->label().c_str(),
                       variant.c_str(), static_cast<long long>(seed));
          continue;
        }
        std::optional<json> result;
        try {
          result = experiment::run_one(*task, variant, seed, run_dir, config.run, [] { return stop_requested.load(); });
        } catch (const experiment::RunInUse&) {
          std::fprintf(stderr, "[%s %s seed %lld] another process is working on it; skipped here\n",
                       task->label().c_str(), variant.c_str(), static_cast<long long>(seed));
          continue;
        }
        if (!result) {
          std::fprintf(stderr, "experiment %s interrupted; run the same command to resume\n", config.name.c_str());
          std::exit(130);
        }
        results.push_back(*result);
        if (!archive_dir.empty()) experiment::archive_run(run_dir, archive_dir);
      }
    if (a.train_only) continue;
    tables += "\n## " + task->label() + ": " + task->description() + "\n\n";
    if (results.empty()) {  // --report before any run of this task finished
      tables += "(no finished runs yet)\n";
      std::fprintf(stderr, "%s: no finished runs; no table rows, no figures\n", task->label().c_str());
      continue;
    }
    const auto& variants = config.tasks[i].variants;
    finished_labels.push_back(task->label()), finished_results.push_back(results);
    finished_variants.push_back(variants);
    if (task->regression()) {
      if (forecast_labels.empty()) forecast_variants = variants;
      same_forecast_variants = same_forecast_variants && variants == forecast_variants;
      forecast_labels.push_back(task->label());
      forecast_results.push_back(results);
    }
    tables += experiment::results_table(*task, results, variants);
    if (const auto paired = experiment::paired_table(results, variants, task->metric_name()); !paired.empty())
      tables += "\nAgainst " + variants.front() +
                ", seed by seed (Δ: mean ± std of the differences over the seeds both " +
                "have; lower: in how many of them the variant's value is lower):\n\n" + paired;
    fs::create_directories(task_dir);  // absent when every run came from the archive
    std::ofstream(task_dir + "/runs.json") << json(results).dump(1) << "\n";
    // Figures: outliers over training (the paper's Figure 2), per layer (Figure 3), per component (Figure 4); with
    // early stopping every validation check of every run, labelled with its variant and seed (runs archived before
    // the archive kept validation.jsonl are left out of that figure).
    std::ofstream tracking(task_dir + "/tracking.jsonl"), validation(task_dir + "/validation.jsonl");
    bool validated = false;
    for (const auto& variant : config.tasks[i].variants)
      for (const auto seed : config.seeds) {
        const auto run_files = files_of(variant, seed);
        if (fs::exists(run_files + "/tracking.jsonl") && fs::file_size(run_files + "/tracking.jsonl") > 0)
          tracking << std::ifstream(run_files + "/tracking.jsonl").rdbuf();
        std::ifstream checks(run_files + "/validation.jsonl");
        for (std::string line; std::getline(checks, line);)
          if (!line.empty()) {
            auto check = json::parse(line);
            check["variant"] = variant, check["seed"] = seed;
            validation << check.dump() << "\n";
            validated = true;
          }
      }
    tracking.close(), validation.close();
    const auto title = task->label() + ": " + task->description();
    std::string files = "runs.json,tracking.jsonl";
    bool plotted = true;
    auto plot = [&](const char* kind, const std::string& input, const std::string& png) {
      plotted = run_plot(kind, task_dir + "/" + input, task_dir + "/" + png, title) && plotted;
      files += "," + png;
    };
    plot("tracking", "tracking.jsonl", "training.png");
    plot("layers", "runs.json", "layers.png");
    plot("components", "runs.json", "components.png");
    if (task->regression()) plot("forecast", "runs.json", "forecast.png");  // the first test window per variant
    if (validated) plot("validation", "validation.jsonl", "validation.png");
    std::fprintf(stderr, "%s: %s/{%s}%s\n", task->label().c_str(), task_dir.c_str(), files.c_str(),
                 plotted ? "" : ("; plotting with " + plot_python() + " failed (see above)").c_str());
  }
  if (a.train_only) return require_copies_succeeded(failed_copies);
  // Summaries after the title: the forecasts side by side (several forecasting tasks), then every task's outliers.
  std::string summaries;
  if (forecast_labels.size() > 1 && same_forecast_variants)
    summaries += "\n## All tasks: FP32 test MSE and MAE (mean ± std over seeds; bold: the lowest of a row)\n\n" +
                 experiment::forecast_summary_table(forecast_labels, forecast_results, forecast_variants);
  // Every task's outliers and quantized KL against its baseline, seed by seed: tables (several tasks), data and a
  // figure.
  const auto paired = experiment::paired_outliers(finished_labels, finished_results, finished_variants);
  if (finished_labels.size() > 1)
    if (const auto outliers = experiment::outlier_summary_tables(paired); !outliers.empty())
      summaries +=
          "\n## All tasks: outliers and quantization cost against each task's baseline, seed by seed (Δ: mean ± "
          "std of the differences; in brackets: in how many seeds the variant's value is lower)\n\n" +
          outliers;
  tables.insert(tables.find('\n') + 1, summaries);
  if (!paired.empty()) {
    std::ofstream(dir + "/outliers.json") << paired.dump(1) << "\n";
    const bool plotted = run_plot("outliers", dir + "/outliers.json", dir + "/outliers.png",
                                  config.name + ": each variant minus its baseline, seed by seed");
    std::fprintf(stderr, "%s: %s/{outliers.json,outliers.png}%s\n", config.name.c_str(), dir.c_str(),
                 plotted ? "" : ("; plotting with " + plot_python() + " failed (see above)").c_str());
  }
  std::ofstream(dir + "/table.md") << tables;
  std::cout << tables;
  std::fprintf(stderr, "wrote %s/table.md\n", dir.c_str());
  require_copies_succeeded(failed_copies);
}

}  // namespace

void add_experiment(CLI::App& app) {
  auto a = std::make_shared<ExperimentArgs>();
  auto* cmd = app.add_subcommand(
      "experiment",
      "Train and evaluate every task x attention variant x seed of a YAML config (resumable; finished "
      "runs are skipped) and write the paper's Table 1 (Table 2 for forecasting) layout and figures");
  auto* config = cmd->add_option("--config", a->config, "a YAML experiment config")->check(CLI::ExistingFile);
  cmd->add_option("--preset", a->preset,
                  "a config of configs/: demo, table1-cpu, table2-cpu, table1-gpu, table2-gpu, ... (an unknown name "
                  "lists them all)")
      ->excludes(config);
  cmd->add_option("--set", a->overrides,
                  "override a config value: path=value, e.g. tasks.*.train.steps=100 or seeds=[0,1,2] (repeatable)");
  cmd->add_option("--task", a->only_tasks,
                  "run (or report) only this task of the config, by its label: the folder name under RUNS_DIR/NAME, "
                  "e.g. stanhop-wth-24 (repeatable)");
  cmd->add_option("--runs-dir", a->runs_dir, "where runs keep their state and results (RUNS_DIR/NAME/...)")
      ->capture_default_str();
  cmd->add_option("--data-dir", a->data_dir, "the shared data directory (text/, cifar10/, mnist/)")
      ->capture_default_str();
  cmd->add_option("--archive", a->archive,
                  "also keep each finished run's result.json, tracking.jsonl and validation.jsonl in "
                  "ARCHIVE/NAME/TASK/RUN, and take runs finished there as done (e.g. docs/runs, committed: results "
                  "add up across machines)");
  cmd->add_flag("--dump-config", a->dump_config, "print the resolved config (every default filled in) and exit");
  cmd->add_flag("--report", a->report,
                "write the tables and figures from the runs finished so far (mean ± std over their seeds); train "
                "nothing");
  cmd->add_flag("--status", a->status,
                "list where each run stands (finished, archived, its step, not started) from the run files alone; "
                "train nothing, read no data")
      ->excludes("--report")
      ->excludes("--dump-config");
  cmd->add_flag("--train-only", a->train_only, "train and evaluate the runs; write no tables or figures")
      ->excludes("--report")
      ->excludes("--status")
      ->excludes("--dump-config");
  cmd->add_option("--jobs", a->jobs,
                  "train up to N runs at once, each in its own process with 1/N of the cores (OMP_NUM_THREADS when "
                  "set), then write the tables and figures of all of them (small models: more steps/s in all than "
                  "one multi-threaded run at a time)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str()
      ->excludes("--report")
      ->excludes("--status")
      ->excludes("--dump-config");
  cmd->callback([a] {
    TORCH_CHECK(!a->config.empty() || !a->preset.empty(), "experiment: give --config FILE or --preset NAME");
    run(*a);
  });
}

}  // namespace outeffhop::cli
