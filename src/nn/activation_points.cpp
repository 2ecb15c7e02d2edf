// Named activation points (see activation_points.h).
#include "outeffhop/nn/activation_points.h"

#include <ATen/ATen.h>

namespace outeffhop::nn {

void ActivationPoints::add_observer(Observer observer) { observers_.push_back(std::move(observer)); }

void ActivationPoints::set_transform(Transform transform) { transform_ = std::move(transform); }

void ActivationPoints::set_linear_override(LinearOverride override_fn) { linear_override_ = std::move(override_fn); }

void ActivationPoints::clear_observers() { observers_.clear(); }

void ActivationPoints::clear() {
  observers_.clear();
  transform_ = nullptr;
  linear_override_ = nullptr;
}

at::Tensor ActivationPoints::linear(const std::string& name, const at::Tensor& x,
                                    const std::function<at::Tensor(const at::Tensor&)>& compute) const {
  if (linear_override_) {
    auto y = linear_override_(name, x);
    if (y.defined()) return y;
  }
  return compute(x);
}

void ActivationPoints::observe(const std::string& name, const at::Tensor& x) const {
  if (observers_.empty()) return;
  const auto seen = x.detach();
  for (const auto& observer : observers_) observer(name, seen);
}

at::Tensor ActivationPoints::pass(const std::string& name, const at::Tensor& x) const {
  observe(name, x);
  return transform_ ? transform_(name, x) : x;
}

}  // namespace outeffhop::nn
