// A model saved by the experiment runner (RUN_DIR/model.safetensors, or any safetensors file with Hugging Face
// parameter names and a "config" metadata entry {"task": resolved task config, "variant": ..., "seed": ...}), rebuilt
// from its config and loaded.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "outeffhop/experiment/task.h"
#include "outeffhop/safetensors.h"

namespace outeffhop::cli {

struct SavedModel {
  nlohmann::json config;  // {"task": ..., "variant": ..., "seed": ...}
  experiment::TaskModel model;
};

inline SavedModel load_saved_model(const std::string& path) {
  const auto metadata = load_safetensors(path).metadata;
  const auto it = metadata.find("config");
  TORCH_CHECK(it != metadata.end(), path, ": no 'config' in the metadata (not saved by `outeffhop experiment`)");
  SavedModel saved;
  try {
    saved.config = nlohmann::json::parse(it->second);
    saved.model = experiment::build_model(saved.config.at("task"), saved.config.at("variant").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, path, ": the 'config' metadata is not a run config (", e.what(), ")");
  }
  load_module(path, *saved.model.module);
  return saved;
}

}  // namespace outeffhop::cli
