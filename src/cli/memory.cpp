// `outeffhop memory capacity|noise`: the paper's Figures 5-6 experiments, with a table, CSV, markdown and PNG plots.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "build_config.h"
#include "commands.h"
#include "analysis/mean_std.h"
#include "plot.h"
#include "outeffhop/memory_experiments.h"

namespace outeffhop::cli {
namespace {

struct MemoryOptions {
  memory::MemoryExperimentConfig config;
  std::string harness = "uhn";
  bool beta_given = false;
  std::string out;
  bool json = false;
};

// Markdown: one row per swept value, one column per model, "success mean ± std (sqdiff mean)".
std::string summary_table(const memory::MemoryExperimentConfig& c, const std::vector<memory::MemoryExperimentRow>& rows) {
  const bool capacity = c.experiment == "capacity";
  const bool by_steps = c.steps.size() > 1;  // retrieval curves: one row per step count
  std::map<std::pair<double, int64_t>, std::map<std::string, std::pair<std::vector<double>, std::vector<double>>>> cells;
  for (const auto& r : rows) {
    auto& cell = cells[{capacity ? static_cast<double>(r.n) : r.sigma, by_steps ? r.steps : 0}][r.model];
    cell.first.push_back(r.success_rate);
    cell.second.push_back(r.mean_sqdiff);
  }
  std::ostringstream md;
  md << "| " << (capacity ? "N" : "sigma") << (by_steps ? " | steps" : "");
  for (const auto& m : c.models) md << " | " << m;
  md << " |\n|---" << (by_steps ? "|---" : "");
  for (size_t i = 0; i < c.models.size(); ++i) md << "|---";
  md << "|\n";
  char buf[96];
  for (const auto& [key, by_model] : cells) {
    md << "| " << key.first;
    if (by_steps) md << " | " << key.second;
    for (const auto& m : c.models) {
      const auto s = analysis::mean_std(by_model.at(m).first), e = analysis::mean_std(by_model.at(m).second);
      std::snprintf(buf, sizeof buf, " | %.3f ± %.3f (%.1f)", s.mean, s.std, e.mean);
      md << buf;
    }
    md << " |\n";
  }
  return md.str();
}

void write_outputs(const MemoryOptions& o, const std::vector<memory::MemoryExperimentRow>& rows,
                   const std::string& table, const std::string& title) {
  namespace fs = std::filesystem;
  fs::create_directories(o.out);
  const auto csv_path = fs::path(o.out) / "results.csv";
  {
    std::ofstream csv(csv_path.string() + ".tmp");
    csv << "experiment,harness,dataset,model,n,sigma,seed,steps,success_rate,mean_sqdiff,mean_energy,flagged\n";
    for (const auto& r : rows)
      csv << o.config.experiment << "," << o.harness << "," << o.config.dataset << "," << r.model << "," << r.n << ","
          << r.sigma << "," << r.seed << "," << r.steps << "," << r.success_rate << "," << r.mean_sqdiff << ","
          << r.mean_energy << "," << r.flagged << "\n";
    TORCH_CHECK(csv.good(), "could not write ", csv_path.string());
  }
  fs::rename(csv_path.string() + ".tmp", csv_path);
  std::ofstream(fs::path(o.out) / "summary.md") << "# " << title << "\n\n"
                                                  << "success rate mean ± std over seeds (mean squared difference)\n\n"
                                                  << table;
  const auto png = fs::path(o.out) / (o.config.experiment + ".png");
  if (run_plot("memory", csv_path.string(), png.string(), title)) {
    std::cerr << "wrote " << csv_path.string() << ", summary.md and " << png.string() << "\n";
  } else {
    std::cerr << "wrote " << csv_path.string() << " and summary.md; the plot failed (needs " << plot_python()
              << " with matplotlib: scripts/setup.sh installs it)\n";
  }
}

std::string steps_text(const std::vector<int64_t>& steps) {
  std::string text;
  for (const auto k : steps) text += (text.empty() ? "" : ",") + std::to_string(k);
  return text;
}

void run_memory(MemoryOptions o) {
  const auto t0 = std::chrono::steady_clock::now();
  o.config.harness = memory::parse_harness(o.harness);
  o.config = memory::with_defaults(o.config, o.beta_given);
  const auto& c = o.config;
  std::ostringstream title;
  title << c.experiment << " on " << c.dataset << " (" << c.split << "), " << o.harness << " harness, beta "
        << c.params.beta << (c.harness == memory::Harness::kUhop ? ", steps " + steps_text(c.steps) : "")
        << ", " << c.seeds.size() << " seed(s)";
  std::cerr << title.str() << "\n";
  const auto rows = memory::run_memory_experiment(c, [](const std::string& line) { std::cerr << line << "\n"; });
  const auto table = summary_table(c, rows);
  if (!o.out.empty()) write_outputs(o, rows, table, title.str());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.json) {
    nlohmann::json results = nlohmann::json::array();
    for (const auto& r : rows)
      results.push_back({{"model", r.model}, {"n", r.n}, {"sigma", r.sigma}, {"seed", r.seed}, {"steps", r.steps},
                         {"success_rate", r.success_rate}, {"mean_sqdiff", r.mean_sqdiff},
                         {"mean_energy", std::isnan(r.mean_energy) ? nlohmann::json() : nlohmann::json(r.mean_energy)},
                         {"flagged", r.flagged}});
    std::cout << nlohmann::json{{"experiment", c.experiment}, {"harness", o.harness}, {"dataset", c.dataset},
                                {"beta", c.params.beta}, {"seconds", seconds}, {"results", results}}
                     .dump()
              << "\n";
    return;
  }
  std::cout << title.str() << "\nsuccess rate (cosine >= " << c.success_cosine
            << ") mean ± std over seeds (mean squared difference)\n\n"
            << table << "\n(" << seconds << " s)\n";
}

struct KrotovOptions {
  MemoryOptions base;
  int64_t power = 10;
  int64_t sweeps = 5;
};

void run_krotov(KrotovOptions k) {
  auto& o = k.base;
  const auto t0 = std::chrono::steady_clock::now();
  o.harness = "krotov";
  auto& c = o.config;
  if (c.sizes.empty()) c.sizes = {10, 20, 50, 100, 200, 500, 1000};
  TORCH_CHECK(k.power >= 2 && k.sweeps >= 1, "--power must be >= 2 and --sweeps >= 1");
  for (const auto n : c.sizes) TORCH_CHECK(n >= 1, "--sizes must be >= 1, got ", n);
  c.models = {"krotov-n" + std::to_string(k.power)};
  c.sigmas = {0.0};
  const std::string title = "capacity of the binary Krotov-Hopfield memory (F(x) = x^" + std::to_string(k.power) +
                            ") on binarised " + c.dataset + " (" + c.split + "), bottom halves set to -1";
  std::cerr << title << "\n";
  const auto rows = memory::run_krotov_experiment(c, k.power, k.sweeps,
                                                  [](const std::string& line) { std::cerr << line << "\n"; });
  const auto table = summary_table(c, rows);
  if (!o.out.empty()) write_outputs(o, rows, table, title);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.json) {
    nlohmann::json results = nlohmann::json::array();
    for (const auto& r : rows)
      results.push_back({{"model", r.model}, {"n", r.n}, {"seed", r.seed}, {"sweeps", r.steps},
                         {"success_rate", r.success_rate}, {"mean_sqdiff", r.mean_sqdiff}});
    std::cout << nlohmann::json{{"experiment", "krotov"}, {"dataset", c.dataset}, {"power", k.power},
                                {"seconds", seconds}, {"results", results}}
                     .dump()
              << "\n";
    return;
  }
  std::cout << title << "\nsuccess rate (cosine >= " << c.success_cosine
            << ") mean ± std over seeds (mean squared difference = 4 x Hamming distance)\n\n"
            << table << "\n(" << seconds << " s)\n";
}

void add_experiment(CLI::App* parent, const std::string& name, const std::string& help) {
  auto o = std::make_shared<MemoryOptions>();
  o->config.experiment = name;
  auto* cmd = parent->add_subcommand(name, help);
  cmd->add_option("--dataset", o->config.dataset, "fashion-mnist (Debian package), mnist or cifar10 (--data-dir)")
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "cifar10"}))
      ->capture_default_str();
  cmd->add_option("--data-dir", o->config.data_dir, "Folder with the shared datasets (e.g. ../shared/data)");
  cmd->add_option("--split", o->config.split, "train or test")->capture_default_str();
  cmd->add_option("--harness", o->harness, "uhn (one shot, renormalised) or uhop (k steps)")->capture_default_str();
  cmd->add_option("--models", o->config.models,
                  "softmax, softmax1, sparsemax, sparsemax-beta, entmax15, entmax-alpha, poly10")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--sizes", o->config.sizes, "Numbers of stored images (default: the paper's sweep, or 1000)")
      ->delimiter(',');
  cmd->add_option("--sigmas", o->config.sigmas, "Noise stds (default: the paper's sweep for noise, 0 otherwise)")
      ->delimiter(',');
  cmd->add_option("--steps", o->config.steps, "UHop update steps; several (1,2,5,10) give success-vs-steps curves")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--beta", o->config.params.beta, "Separation scale (default 1000 for uhn, 1 for uhop)")
      ->each([o](const std::string&) { o->beta_given = true; });
  cmd->add_option("--alpha", o->config.params.alpha, "alpha of entmax-alpha")->capture_default_str();
  cmd->add_option("--no-op-threshold", o->config.no_op_threshold,
                  "Flag memories whose cosine to every other is below this as no-op outliers (0 = off)")
      ->capture_default_str();
  cmd->add_option("--order", o->config.order, "file (first N in file order) or shuffled (seeded)")
      ->capture_default_str();
  cmd->add_option("--seeds", o->config.seeds, "Seeds")->delimiter(',')->capture_default_str();
  cmd->add_option("--out", o->out, "Folder for results.csv, summary.md and a PNG plot");
  cmd->add_flag("--json", o->json, "Print one JSON object instead of the table");
  cmd->callback([o] { run_memory(*o); });
}

}  // namespace

void add_memory(CLI::App& app) {
  auto* memory_cmd = app.add_subcommand("memory", "Associative-memory experiments (the paper's Figures 5-6)");
  memory_cmd->require_subcommand(1);
  add_experiment(memory_cmd, "capacity", "Half-masked queries against growing numbers of stored images");
  add_experiment(memory_cmd, "noise", "Gaussian-noise queries against 1000 stored images");
  auto k = std::make_shared<KrotovOptions>();
  auto* krotov = memory_cmd->add_subcommand(
      "krotov", "Capacity of the binary Krotov-Hopfield dense associative memory on binarised images");
  krotov->add_option("--dataset", k->base.config.dataset, "fashion-mnist, mnist or cifar10 (--data-dir)")
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "cifar10"}))
      ->capture_default_str();
  krotov->add_option("--data-dir", k->base.config.data_dir, "Folder with the shared datasets");
  krotov->add_option("--split", k->base.config.split, "train or test")->capture_default_str();
  krotov->add_option("--sizes", k->base.config.sizes, "Numbers of stored images (default 10 ... 1000)")
      ->delimiter(',');
  krotov->add_option("--power", k->power, "n of the rectified polynomial F(x) = x^n")->capture_default_str();
  krotov->add_option("--sweeps", k->sweeps, "Most asynchronous sweeps over the neurons")->capture_default_str();
  krotov->add_option("--order", k->base.config.order, "file or shuffled (seeded)")->capture_default_str();
  krotov->add_option("--seeds", k->base.config.seeds, "Seeds")->delimiter(',')->capture_default_str();
  krotov->add_option("--out", k->base.out, "Folder for results.csv, summary.md and a PNG plot");
  krotov->add_flag("--json", k->base.json, "Print one JSON object instead of the table");
  krotov->callback([k] { run_krotov(*k); });

  add_mil(memory_cmd);
}

}  // namespace outeffhop::cli
