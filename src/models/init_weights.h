// Hugging Face's transformer initialisation, shared by the models: N(0, std) for Linear, Conv2d and Embedding weights,
// zero biases; LayerNorms keep (1, 0). Attention gates (modules under `alpha.`) keep their own initialisation: their
// bias starts at logit(0.25) as in Bondarenko et al.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

namespace outeffhop::models {

inline void init_transformer_weights(torch::nn::Module& root, double std) {
  torch::NoGradGuard no_grad;
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    const auto& name = item.key();
    if (name.find("alpha.") == 0 || name.find(".alpha.") != std::string::npos) continue;
    auto& m = item.value();
    if (auto* linear = m->as<torch::nn::Linear>()) {
      linear->weight.normal_(0, std);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* conv = m->as<torch::nn::Conv2d>()) {
      conv->weight.normal_(0, std);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* embedding = m->as<torch::nn::Embedding>()) {
      embedding->weight.normal_(0, std);
    }
  }
}

}  // namespace outeffhop::models
