// Helpers shared by the C++ tests: tolerances, finite-difference gradients, data-folder lookup.
#pragma once
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

namespace outeffhop::testing {

// float64 results of two independent formulas agree to a few ulps of the largest terms.
constexpr double kTolF64 = 1e-12;
// float32 kernels against a float64 oracle: accumulation of ~1e3 terms at 6e-8 relative rounding each.
constexpr double kTolF32 = 2e-5;
// bfloat16 outputs carry 8 mantissa bits: one rounding is up to 2^-8 relative.
constexpr double kTolBF16 = 8e-3;
// Central differences in float64 with h = 1e-6: truncation O(h^2) ~ 1e-12 plus cancellation 1e-16/h ~ 1e-10.
constexpr double kFiniteDiffStep = 1e-6;
constexpr double kTolFiniteDiff = 1e-6;

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Numerical gradient of the scalar f(x) with respect to every entry of x (float64), by central differences.
inline at::Tensor numeric_grad(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  auto base = x.detach().clone().contiguous();
  auto grad = at::zeros_like(base);
  auto flat = base.view(-1);
  auto gflat = grad.view(-1);
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double orig = flat[i].item<double>();
    flat[i] = orig + kFiniteDiffStep;
    const double up = f(base).item<double>();
    flat[i] = orig - kFiniteDiffStep;
    const double down = f(base).item<double>();
    flat[i] = orig;
    gflat[i] = (up - down) / (2 * kFiniteDiffStep);
  }
  return grad;
}

// Gradient of the scalar f(x) by autograd (through whatever custom backward f uses).
inline at::Tensor autograd_grad(const std::function<at::Tensor(const at::Tensor&)>& f, const at::Tensor& x) {
  auto leaf = x.detach().clone().set_requires_grad(true);
  f(leaf).backward();
  return leaf.grad();
}

// The shared data folder (../shared/data from the repository root), or "" when it is absent.
inline std::string shared_data_dir() {
  const char* env = std::getenv("OUTEFFHOP_DATA_DIR");
  for (const std::string candidate : {env ? env : "", "../shared/data"}) {
    if (!candidate.empty() && std::filesystem::exists(candidate + "/SHA256SUMS")) return candidate;
  }
  return "";
}

inline const char* kFashionMnistTrain = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

}  // namespace outeffhop::testing
