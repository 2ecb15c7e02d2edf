// Named activation points. LibTorch's C++ modules have no forward hooks, so the modules of this library pass selected
// activations through `ActivationPoints::pass(name, x)` themselves, under Hugging Face-style names
// ("model.decoder.layers.3.fc2"). Observers see each activation (outlier statistics, tracking during training); one
// transform may replace it (simulated quantization). With no points attached a point costs one pointer test.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace outeffhop::nn {

class ActivationPoints {
 public:
  using Observer = std::function<void(const std::string& name, const at::Tensor& x)>;
  using Transform = std::function<at::Tensor(const std::string& name, const at::Tensor& x)>;
  // Computes a named Linear layer instead of the module (e.g. a real INT8 kernel); an undefined result declines.
  using LinearOverride = std::function<at::Tensor(const std::string& name, const at::Tensor& x)>;

  void add_observer(Observer observer);
  void set_transform(Transform transform);  // replaces the transform; an empty one removes it
  void set_linear_override(LinearOverride override_fn);  // an empty one removes it
  void clear_observers();
  void clear();  // observers and transform
  bool has_transform() const { return static_cast<bool>(transform_); }

  // Observers see x (detached), then the transform (if any) gives the value passed on.
  at::Tensor pass(const std::string& name, const at::Tensor& x) const;
  // Observers only: for a value that no transform may replace (attention gates, which W8A8 leaves in float).
  void observe(const std::string& name, const at::Tensor& x) const;
  // The named Linear's output: the override's, or compute(x) when there is none or it declines.
  at::Tensor linear(const std::string& name, const at::Tensor& x,
                    const std::function<at::Tensor(const at::Tensor&)>& compute) const;

 private:
  std::vector<Observer> observers_;
  Transform transform_;
  LinearOverride linear_override_;
};

using ActivationPointsPtr = std::shared_ptr<ActivationPoints>;

// What a module keeps: the shared points (may be null) and its own name prefix ("model.decoder.layers.3.").
struct PointsHandle {
  ActivationPointsPtr points;
  std::string prefix;

  // The point's full name is prefix + point; the empty point names the module itself (the prefix without its dot).
  at::Tensor pass(const std::string& point, const at::Tensor& x) const {
    if (!points) return x;
    if (!point.empty()) return points->pass(prefix + point, x);
    return points->pass(prefix.empty() || prefix.back() != '.' ? prefix : prefix.substr(0, prefix.size() - 1), x);
  }
  void observe(const std::string& point, const at::Tensor& x) const {
    if (points) points->observe(prefix + point, x);
  }
  bool transforming() const { return points && points->has_transform(); }
  // A Linear layer named `point` (a module of this one) applied to x, then passed through its point.
  template <typename LinearModule>
  at::Tensor linear(const std::string& point, LinearModule& module, const at::Tensor& x) const {
    if (!points) return module->forward(x);
    const auto compute = [&](const at::Tensor& t) { return module->forward(t); };
    return points->pass(prefix + point, points->linear(prefix + point, x, compute));
  }
};

}  // namespace outeffhop::nn
