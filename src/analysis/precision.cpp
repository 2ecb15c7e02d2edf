// Reduced-precision evaluation emulated on CPU (see precision.h).
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

}  // namespace outeffhop::analysis
