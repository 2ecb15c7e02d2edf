// Training loop pieces shared by the models: the paper's AdamW decay groups, warmup + linear/cosine/step schedules,
// global gradient-norm clipping, and a step loop that reports every step.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <functional>
#include <memory>
#include <string>

namespace outeffhop::train {

struct TrainOptions {
  int64_t steps = 100;
  double lr = 4e-4;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  int64_t warmup = 0;                // steps of linear warmup from 0
  std::string schedule = "linear";  // after warmup: linear (to 0 at `steps`), cosine (to 0), constant, halving
  int64_t halve_every = 0;           // halving: lr halves every K steps after warmup ...
  int64_t halvings = 5;              // ... at most this many times (STanHop: after epochs 2, 4, 6, 8, 10)
  double clip = 1.0;                 // max global gradient norm; <= 0 disables clipping
};

// The learning rate of 0-based step `step`.
double learning_rate(const TrainOptions& o, int64_t step);

// AdamW with weight decay on matrices only (Linear and Embedding weights); biases, LayerNorm parameters and per-head
// sinks are not decayed, as in the paper's setups.
std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const TrainOptions& o);

struct StepReport {
  int64_t step = 0;  // 1-based: steps done
  double loss = 0, lr = 0, grad_norm = 0;
  double seconds = 0;  // wall time of this step
};

// Steps first_step..o.steps-1 of: loss(step) (0-based) -> backward -> clip -> AdamW at the scheduled rate; on_step
// after each. Stops early, after a complete step, when stop_requested() says so (e.g. on Ctrl-C). Returns the number of
// steps done in all. Throws on a non-finite loss, naming the step.
int64_t train(torch::nn::Module& model, torch::optim::AdamW& optimizer, const TrainOptions& o,
              const std::function<at::Tensor(int64_t)>& loss, const std::function<void(const StepReport&)>& on_step,
              int64_t first_step = 0, const std::function<bool()>& stop_requested = {});

}  // namespace outeffhop::train
