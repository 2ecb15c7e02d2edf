// Reduced-precision evaluation, two ways. Emulated (any machine): every parameter and every activation point rounded
// to float16 or bfloat16, values kept in float32 between points; it shows what storing weights and activations in
// half precision costs, while the arithmetic inside an op still runs in float32. Native: the model itself cast to
// float16 or bfloat16 on a device (a GPU's half-precision arithmetic; on CPU, LibTorch's half kernels).
#pragma once
#include <c10/core/Device.h>
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

class NativeHalfPrecision {
 public:
  // type: at::kHalf or at::kBFloat16. Moves every parameter and buffer to `device` now (floating ones cast to
  // `type`, integer ones keep theirs); restores the original tensors when destroyed (or by restore()).
  NativeHalfPrecision(torch::nn::Module& model, at::ScalarType type, at::Device device);
  ~NativeHalfPrecision();
  NativeHalfPrecision(const NativeHalfPrecision&) = delete;
  NativeHalfPrecision& operator=(const NativeHalfPrecision&) = delete;
  void restore();
  // A model input on the device: floating tensors cast to the type, integer ones (token ids) as they are.
  at::Tensor input(const at::Tensor& x) const;

 private:
  at::ScalarType type_;
  at::Device device_;
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_;  // (parameter or buffer, its original data)
};

}  // namespace outeffhop::analysis
