// Reduced-precision evaluation emulated on CPU: every parameter and every activation point rounded to float16 or
// bfloat16 (values kept in float32 between points). It shows what storing weights and activations in half
// precision costs; the arithmetic inside an op still runs in float32.
#pragma once
#include <torch/nn/module.h>

#include <vector>

#include "outeffhop/nn/activation_points.h"

namespace outeffhop::analysis {

class HalfPrecisionEmulation {
 public:
  // type: at::kHalf or at::kBFloat16. Rounds the parameters now; restores them when destroyed (or by restore()).
  HalfPrecisionEmulation(torch::nn::Module& model, nn::ActivationPointsPtr points, at::ScalarType type);
  ~HalfPrecisionEmulation();
  HalfPrecisionEmulation(const HalfPrecisionEmulation&) = delete;
  HalfPrecisionEmulation& operator=(const HalfPrecisionEmulation&) = delete;
  void restore();

 private:
  nn::ActivationPointsPtr points_;
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_;  // (parameter, float copy)
};

}  // namespace outeffhop::analysis
