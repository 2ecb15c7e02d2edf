// `outeffhop memory mil`: multiple-instance learning with HopfieldPooling, k-fold cross-validated, on image bags or
// Andrews et al.'s Fox / Elephant / Tiger benchmarks.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "analysis/mean_std.h"
#include "outeffhop/data.h"
#include "outeffhop/memory.h"
#include "outeffhop/mil.h"

namespace outeffhop::cli {
namespace {

struct MilOptions {
  std::string dataset = "fashion-mnist", data_dir, split = "test";
  std::string benchmark;  // fox | elephant | tiger: Andrews et al.'s bags instead of image bags
  int64_t target = 9, bags = 400;
  double bag_size = 10, bag_size_std = 2;
  mil::MilConfig config;
  std::string out;
  bool json = false;
};

void run_mil(const MilOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  mil::Bags bags;
  std::string source = o.dataset;
  if (!o.benchmark.empty()) {
    const auto b = data::read_mil_benchmark(o.data_dir, o.benchmark);
    bags = mil::bags_from_instances(b.instances, b.bag, b.positive);
    source = o.benchmark;
    std::cerr << "MIL on " << o.benchmark << ": " << bags.labels.size(0) << " bags (" << bags.labels.sum().item<double>()
              << " positive) of " << b.instances.size(0) << " instances with " << b.instances.size(1) << " features; "
              << o.config.folds << "-fold cross-validation\n";
  } else {
    TORCH_CHECK(o.split == "train" || o.split == "test", "--split must be train or test");
    const auto data = data::load_images(o.dataset, o.split == "train" ? data::Split::kTrain : data::Split::kTest,
                                        o.data_dir);
    const auto features = memory::to_unit_range(data.images).reshape({data.images.size(0), -1});
    bags = mil::make_bags(features, data.labels, o.target, o.bags, o.bag_size, o.bag_size_std, o.config.seed);
    std::cerr << "MIL on " << o.dataset << ": " << o.bags << " bags of ~" << o.bag_size
              << " images, positive when one is class " << o.target << "; " << o.config.folds
              << "-fold cross-validation\n";
  }
  const auto rows = mil::cross_validate(bags, o.config, [](const std::string& line) { std::cerr << line << "\n"; });
  std::ostringstream md;
  md << "| association | accuracy | AUC |\n|---|---|---|\n";
  char buf[160];
  for (const auto& model : o.config.models) {
    std::vector<double> acc, auc;
    for (const auto& r : rows)
      if (r.model == model) acc.push_back(r.accuracy), auc.push_back(r.auc);
    const auto a = analysis::mean_std(acc), u = analysis::mean_std(auc);
    std::snprintf(buf, sizeof buf, "| %s | %.3f ± %.3f | %.3f ± %.3f |\n", model.c_str(), a.mean, a.std, u.mean, u.std);
    md << buf;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.out.empty()) {
    std::filesystem::create_directories(o.out);
    std::ofstream csv(std::filesystem::path(o.out) / "results.csv");
    csv << "dataset,model,fold,accuracy,auc\n";
    for (const auto& r : rows) csv << source << "," << r.model << "," << r.fold << "," << r.accuracy << "," << r.auc << "\n";
    std::ofstream(std::filesystem::path(o.out) / "summary.md") << md.str();
  }
  if (o.json) {
    nlohmann::json results = nlohmann::json::array();
    for (const auto& r : rows)
      results.push_back({{"model", r.model}, {"fold", r.fold}, {"accuracy", r.accuracy}, {"auc", r.auc}});
    std::cout << nlohmann::json{{"experiment", "mil"}, {"dataset", source}, {"target", o.target},
                                {"seconds", seconds}, {"results", results}}
                     .dump()
              << "\n";
    return;
  }
  std::cout << "MIL with HopfieldPooling on " << source << " bags"
            << (o.benchmark.empty() ? " (target class " + std::to_string(o.target) + ")" : "") << ", " << o.config.folds << "-fold CV, mean ± std over folds\n\n"
            << md.str() << "\n(" << seconds << " s)\n";
}

}  // namespace

void add_mil(CLI::App* memory_cmd) {
  auto m = std::make_shared<MilOptions>();
  auto* mil_cmd = memory_cmd->add_subcommand(
      "mil", "Multiple-instance learning with HopfieldPooling: image bags positive when one is the target class");
  mil_cmd->add_option("--dataset", m->dataset, "fashion-mnist, mnist or cifar10 (--data-dir)")
      ->check(CLI::IsMember({"fashion-mnist", "mnist", "cifar10"}))
      ->capture_default_str();
  mil_cmd->add_option("--data-dir", m->data_dir, "Folder with the shared datasets");
  mil_cmd->add_option("--split", m->split, "train or test")->capture_default_str();
  mil_cmd->add_option("--benchmark", m->benchmark,
                      "fox, elephant or tiger (Andrews et al., from --data-dir/mil) instead of image bags")
      ->check(CLI::IsMember({"fox", "elephant", "tiger"}));
  mil_cmd->add_option("--target", m->target, "The class whose presence makes a bag positive")->capture_default_str();
  mil_cmd->add_option("--bags", m->bags, "Number of bags (half positive)")->capture_default_str();
  mil_cmd->add_option("--bag-size", m->bag_size, "Mean instances per bag")->capture_default_str();
  mil_cmd->add_option("--bag-size-std", m->bag_size_std, "Std of the bag size")->capture_default_str();
  mil_cmd->add_option("--models", m->config.models, "HopfieldPooling associations (softmax, softmax1, sparsemax, ...)")
      ->delimiter(',')
      ->capture_default_str();
  mil_cmd->add_option("--folds", m->config.folds, "Cross-validation folds")->capture_default_str();
  mil_cmd->add_option("--epochs", m->config.epochs, "Training epochs per fold")->capture_default_str();
  mil_cmd->add_option("--lr", m->config.learning_rate, "Adam learning rate")->capture_default_str();
  mil_cmd->add_option("--seed", m->config.seed, "Seed (bags, folds, initialisation)")->capture_default_str();
  mil_cmd->add_option("--out", m->out, "Folder for results.csv and summary.md");
  mil_cmd->add_flag("--json", m->json, "Print one JSON object instead of the table");
  mil_cmd->callback([m] { run_mil(*m); });
}

}  // namespace outeffhop::cli
