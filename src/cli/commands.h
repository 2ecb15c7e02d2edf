// Subcommands of the outeffhop CLI: each file registers one on the app.
#pragma once
#include <CLI/CLI.hpp>

namespace outeffhop::cli {
void add_info(CLI::App& app);
void add_retrieve(CLI::App& app);
void add_bench(CLI::App& app);
void add_memory(CLI::App& app);
void add_eval(CLI::App& app);
void add_logits(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_experiment(CLI::App& app);
void add_mil(CLI::App* memory_cmd);  // under `memory`
}  // namespace outeffhop::cli
