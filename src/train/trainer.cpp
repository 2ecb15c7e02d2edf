// Training loop pieces (see train.h).
#include <torch/nn/utils/clip_grad.h>

#include <chrono>
#include <cmath>

#include "outeffhop/train.h"

namespace outeffhop::train {

double learning_rate(const TrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const double span = std::max<int64_t>(1, o.steps - o.warmup);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  if (o.schedule == "linear") return o.lr * (1.0 - progress);
  if (o.schedule == "cosine") return o.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
  if (o.schedule == "halving") {
    TORCH_CHECK(o.halve_every >= 1, "the halving schedule needs halve_every >= 1, got ", o.halve_every);
    return o.lr * std::pow(0.5, static_cast<double>(std::min(o.halvings, (step - o.warmup) / o.halve_every)));
  }
  TORCH_CHECK(o.schedule == "constant", "unknown learning-rate schedule '", o.schedule,
              "' (linear, cosine, constant or halving)");
  return o.lr;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const TrainOptions& o) {
  TORCH_CHECK(o.lr > 0 && o.weight_decay >= 0 && o.steps >= 0 && o.warmup >= 0,
              "training options: need lr > 0, weight_decay >= 0, steps >= 0, warmup >= 0");
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : model.parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(o.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(o.lr));
}

int64_t train(torch::nn::Module& model, torch::optim::AdamW& optimizer, const TrainOptions& o,
              const std::function<at::Tensor(int64_t)>& loss, const std::function<void(const StepReport&)>& on_step,
              int64_t first_step, const std::function<bool()>& stop_requested) {
  model.train();
  for (int64_t step = first_step; step < o.steps; ++step) {
    if (stop_requested && stop_requested()) return step;
    const auto start = std::chrono::steady_clock::now();
    const double lr = learning_rate(o, step);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    optimizer.zero_grad();
    const auto l = loss(step);
    const double value = l.item<double>();
    TORCH_CHECK(std::isfinite(value), "training diverged: loss ", value, " at step ", step + 1);
    l.backward();
    double norm = 0;
    if (o.clip > 0) norm = torch::nn::utils::clip_grad_norm_(model.parameters(), o.clip);
    optimizer.step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_step) on_step({step + 1, value, lr, norm, seconds});
  }
  return std::max(first_step, o.steps);
}

}  // namespace outeffhop::train
