// Named activation points (see activation_points.h).
#include "outeffhop/nn/activation_points.h"

#include <ATen/ATen.h>

namespace outeffhop::nn {

void ActivationPoints::add_observer(Observer observer) { observers_.push_back(std::move(observer)); }

void ActivationPoints::set_transform(Transform transform) { transform_ = std::move(transform); }

void ActivationPoints::clear_observers() { observers_.clear(); }

void ActivationPoints::clear() {
  observers_.clear();
  transform_ = nullptr;
}

at::Tensor ActivationPoints::pass(const std::string& name, const at::Tensor& x) const {
  if (!observers_.empty()) {
    const auto seen = x.detach();
    for (const auto& observe : observers_) observe(name, seen);
  }
  return transform_ ? transform_(name, x) : x;
}

}  // namespace outeffhop::nn
