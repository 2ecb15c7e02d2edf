// Real INT8 Linear through LibTorch's quantized engine agrees with the simulated W8A8 path within one output
// quantization step, and bad ranges give clear errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/functional/linear.h>

#include <algorithm>

#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/outliers.h"

namespace outeffhop::analysis {
namespace {

TEST(Int8Linear, AgreesWithTheSimulatedPathWithinOneStep) {
  at::manual_seed(0);
  torch::nn::Linear linear(64, 48);
  const auto x = at::randn({3, 10, 64}) * 2 + 0.5;
  const std::pair<double, double> in_range{x.min().item<double>() * 0.9, x.max().item<double>() * 0.9};  // clips
  const auto w_hat = fake_quant_sym(linear->weight.detach());
  const auto x_hat = fake_quant_asym(x, in_range.first, in_range.second);
  const auto y_float = torch::nn::functional::linear(x_hat, w_hat, linear->bias.detach());
  const std::pair<double, double> out_range{y_float.min().item<double>(), y_float.max().item<double>()};
  const auto simulated = fake_quant_asym(y_float, out_range.first, out_range.second);

  Int8Linear int8(linear, in_range, out_range);
  const auto real = int8.forward(x);
  ASSERT_EQ(real.sizes(), simulated.sizes());
  const double step = asym_quant_params(out_range.first, out_range.second).delta;
  EXPECT_LE((real - simulated).abs().max().item<double>(), step * 1.0001);
  // Most outputs land on exactly the same level.
  EXPECT_GT(real.isclose(simulated, 0, step * 1e-3).to(at::kFloat).mean().item<double>(), 0.95);
  EXPECT_EQ(int8.packed_weight_bytes(), 64 * 48);
}

TEST(Int8Linear, EnginesAndErrors) {
  const auto engines = quantized_engines();
  EXPECT_FALSE(engines.empty());
  EXPECT_NE(std::find(engines.begin(), engines.end(), current_quantized_engine()), engines.end());
  torch::nn::Linear linear(4, 3);
  EXPECT_THROW(Int8Linear(linear, {0.0, 0.0}, {-1.0, 1.0}), c10::Error);  // zero-width input range
  Int8Linear ok(linear, {-1.0, 1.0}, {-1.0, 1.0});
  EXPECT_THROW(ok.forward(at::randn({2, 5})), c10::Error);  // wrong feature count
}

}  // namespace
}  // namespace outeffhop::analysis
