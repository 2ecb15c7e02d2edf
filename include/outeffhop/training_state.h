// Resumable training state in one safetensors file: the model's parameters and buffers ("model.<name>"), AdamW's
// per-parameter moments and step counts ("optimizer.<name>.exp_avg", ".exp_avg_sq", ".step"), random generator states
// ("rng.<name>"), the number of steps done, and the caller's metadata (e.g. the resolved config). Written atomically;
// loading validates every name, shape and dtype and restores everything in place, so training continues exactly.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <map>
#include <string>

namespace outeffhop::train {

struct TrainingState {
  int64_t step = 0;                             // optimizer steps done
  std::map<std::string, std::string> metadata;  // as saved, without the step
};

// generators: named random generators to save (e.g. {"data", gen}, {"torch", the default CPU generator}).
void save_training_state(const std::string& path, const torch::nn::Module& model,
                         const torch::optim::AdamW& optimizer, int64_t step,
                         const std::map<std::string, at::Generator>& generators,
                         const std::map<std::string, std::string>& metadata = {});

// Restores the model, the optimizer's state and the generators from `path`; throws naming the file and what is wrong
// (missing or extra tensors, a shape or dtype that differs, a generator or optimizer state not in the file).
TrainingState load_training_state(const std::string& path, torch::nn::Module& model, torch::optim::AdamW& optimizer,
                                  std::map<std::string, at::Generator> generators);

}  // namespace outeffhop::train
