// Reduced-precision evaluation, emulated and native (see precision.h).
#include "outeffhop/analysis/precision.h"

#include <ATen/ATen.h>

namespace outeffhop::analysis {

HalfPrecisionEmulation::HalfPrecisionEmulation(torch::nn::Module& model, nn::ActivationPointsPtr points,
                                               at::ScalarType type)
    : points_(std::move(points)) {
  TORCH_CHECK(type == at::kHalf || type == at::kBFloat16, "HalfPrecisionEmulation: type must be float16 or bfloat16");
  TORCH_CHECK(points_, "HalfPrecisionEmulation: the model's activation points are null");
  TORCH_CHECK(!points_->has_transform(), "HalfPrecisionEmulation: the activation points already have a transform");
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) {
    saved_.emplace_back(p, p.detach().clone());
    p.copy_(p.detach().to(type).to(p.scalar_type()));
  }
  points_->set_transform([type](const std::string&, const at::Tensor& x) { return x.to(type).to(x.scalar_type()); });
}

HalfPrecisionEmulation::~HalfPrecisionEmulation() { restore(); }

void HalfPrecisionEmulation::restore() {
  torch::NoGradGuard no_grad;
  for (auto& [param, original] : saved_) param.copy_(original);
  if (!saved_.empty()) points_->set_transform(nullptr);
  saved_.clear();
}

NativeHalfPrecision::NativeHalfPrecision(torch::nn::Module& model, at::ScalarType type, at::Device device)
    : type_(type), device_(device) {
  TORCH_CHECK(type == at::kHalf || type == at::kBFloat16, "NativeHalfPrecision: type must be float16 or bfloat16");
  torch::NoGradGuard no_grad;
  // Not Module::to(type): that would cast integer buffers too.
  auto move = [&](at::Tensor& t) {
    saved_.emplace_back(t, t.data());
    t.set_data(t.is_floating_point() ? t.data().to(device, type) : t.data().to(device));
  };
  for (auto& p : model.parameters()) move(p);
  for (auto& b : model.buffers()) move(b);
}

NativeHalfPrecision::~NativeHalfPrecision() { restore(); }

void NativeHalfPrecision::restore() {
  torch::NoGradGuard no_grad;
  for (auto& [tensor, original] : saved_) tensor.set_data(original);
  saved_.clear();
}

at::Tensor NativeHalfPrecision::input(const at::Tensor& x) const {
  return x.is_floating_point() ? x.to(device_, type_) : x.to(device_);
}

}  // namespace outeffhop::analysis
