// `outeffhop info`: versions, threads, BLAS, CUDA and where the datasets are found.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/Context.h>
#include <torch/headeronly/version.h>

#include <iostream>
#include <sstream>

#include "build_config.h"
#include "commands.h"
#include "outeffhop/data.h"

namespace outeffhop::cli {
namespace {

// The "BLAS_INFO=..." entry of LibTorch's build configuration.
std::string blas_info() {
  const std::string cfg = at::show_config();
  const auto at = cfg.find("BLAS_INFO=");
  if (at == std::string::npos) return "unknown";
  const auto end = cfg.find(',', at);
  return cfg.substr(at + 10, end == std::string::npos ? std::string::npos : end - at - 10);
}

void run_info(const std::string& data_dir) {
  std::cout << "outeffhop " << OUTEFFHOP_VERSION << "\n"
            << "LibTorch " << TORCH_VERSION << " (BLAS: " << blas_info() << ")\n"
            << "intra-op threads: " << at::get_num_threads() << "\n"
            << "CUDA toolkit at build time: " << (OUTEFFHOP_WITH_CUDA ? "yes" : "no")
            << "; CUDA runtime usable: " << (at::hasCUDA() ? "yes" : "no (no GPU or driver)") << "\n"
            << "datasets (--data-dir " << (data_dir.empty() ? "<unset>" : data_dir) << "):\n";
  for (const auto& d : data::locate_datasets(data_dir)) {
    std::cout << "  " << d.name << ": " << (d.found ? "found" : "MISSING") << " (" << d.files.front()
              << (d.files.size() > 1 ? ", ..." : "") << ")\n";
  }
}

}  // namespace

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show versions, threads, BLAS, CUDA and where data is found");
  auto data_dir = std::make_shared<std::string>();
  cmd->add_option("--data-dir", *data_dir, "Folder with the shared datasets (e.g. ../shared/data)");
  cmd->callback([data_dir] { run_info(*data_dir); });
}

}  // namespace outeffhop::cli
