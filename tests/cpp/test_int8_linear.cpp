// Real INT8 Linear through LibTorch's quantized engine agrees with the simulated W8A8 path within one output
// quantization step, and bad ranges give clear errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/functional/linear.h>

#include <algorithm>
#include <cmath>

#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/analysis/w8a8.h"
#include "outeffhop/models/opt.h"
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

// The case that breaks engines which saturate pairs of u8 x s8 products at int16 (FBGEMM and oneDNN on CPUs without
// AVX512-VNNI): every weight at +127 levels and every input at the top of its range. Whatever engine is chosen must
// still give the simulated W8A8 output.
TEST(Int8Linear, ExactWhereProductPairsOverflowInt16) {
  torch::nn::Linear linear(64, 4);
  {
    torch::NoGradGuard no_grad;
    linear->weight.fill_(0.5);
    linear->bias.zero_();
  }
  const auto x = at::full({2, 64}, 3.0);
  const std::pair<double, double> in_range{0.0, 3.0}, out_range{0.0, 100.0};  // exact output 64 * 1.5 = 96
  const auto simulated = fake_quant_asym(
      torch::nn::functional::linear(fake_quant_asym(x, 0.0, 3.0), fake_quant_sym(linear->weight.detach()),
                                    linear->bias.detach()),
      out_range.first, out_range.second);
  Int8Linear int8(linear, in_range, out_range);
  EXPECT_EQ(current_quantized_engine(), exact_quantized_engine());
  const double step = asym_quant_params(out_range.first, out_range.second).delta;
  EXPECT_LE((int8.forward(x) - simulated).abs().max().item<double>(), step * 1.0001)
      << "engine " << current_quantized_engine() << " saturates";
}

TEST(Int8Linear, EnginesAndErrors) {
  const auto engines = quantized_engines();
  EXPECT_FALSE(engines.empty());
  EXPECT_NE(std::find(engines.begin(), engines.end(), current_quantized_engine()), engines.end());
  torch::nn::Linear linear(4, 3);
  EXPECT_THROW(Int8Linear(linear, {1.0, -1.0}, {-1.0, 1.0}), c10::Error);  // reversed input range
  EXPECT_THROW(Int8Linear(linear, {-1.0, 1.0}, {0.0, NAN}), c10::Error);    // non-finite output range
  Int8Linear ok(linear, {-1.0, 1.0}, {-1.0, 1.0});
  EXPECT_THROW(ok.forward(at::randn({2, 5})), c10::Error);  // wrong feature count
}

// A range calibrated as [0, 0] (an attention context that was all zeros: every head abstaining under clipped
// softmax, as in a trained BERT) maps everything to 0, as the simulated path does: the output is the bias, requantized;
// or 0 where the output range is [0, 0] too.
TEST(Int8Linear, ZeroWidthRangesGiveTheSimulatedResult) {
  at::manual_seed(0);
  torch::nn::Linear linear(16, 8);
  const auto x = at::randn({4, 16});
  const auto w_hat = fake_quant_sym(linear->weight.detach());
  const std::pair<double, double> out_range{-1.0, 1.0};
  const auto simulated = fake_quant_asym(
      torch::nn::functional::linear(fake_quant_asym(x, 0.0, 0.0), w_hat, linear->bias.detach()), -1.0, 1.0);
  const auto real = Int8Linear(linear, {0.0, 0.0}, out_range).forward(x);
  EXPECT_GT(simulated.abs().max().item<double>(), 0.0);  // the bias comes through
  EXPECT_LE((real - simulated).abs().max().item<double>(), asym_quant_params(-1.0, 1.0).delta * 1.0001);
  EXPECT_TRUE(Int8Linear(linear, {-3.0, 3.0}, {0.0, 0.0}).forward(x).eq(0).all().item<bool>());
}

TEST(Int8Linears, WholeOptModelMatchesTheSimulation) {
  EXPECT_EQ(opt_linear_input_point("model.decoder.layers.3.self_attn.k_proj"),
            "model.decoder.layers.3.self_attn_layer_norm");
  EXPECT_EQ(opt_linear_input_point("model.decoder.layers.3.self_attn.out_proj"),
            "model.decoder.layers.3.self_attn.context");
  EXPECT_EQ(opt_linear_input_point("model.decoder.layers.0.fc1"), "model.decoder.layers.0.final_layer_norm");
  EXPECT_EQ(opt_linear_input_point("model.decoder.layers.0.fc2"), "model.decoder.layers.0.activation_fn");

  models::OptConfig c;
  c.vocab_size = 32, c.d_model = 32, c.num_layers = 2, c.num_heads = 2, c.d_ff = 64, c.max_positions = 16;
  c.variant = nn::parse_attention_variant("softmax1");
  at::manual_seed(0);
  models::OptForCausalLM m(c);
  m->eval();
  auto points = std::make_shared<nn::ActivationPoints>();
  m->set_activation_points(points);
  const auto x = at::randint(32, {4, 12}, at::kLong);
  W8A8Simulation sim(*m, points, {});
  sim.start_calibration();
  m->forward(x);
  sim.quantize();
  const auto simulated = m->forward(x);
  const Int8Linears int8(*m, sim.ranges(), opt_linear_input_point);
  EXPECT_EQ(int8.size(), 2u * 6u);  // q, k, v, out, fc1, fc2 per layer
  int8.attach(*points);
  const auto real = m->forward(x);
  points->set_linear_override(nullptr);
  // Each INT8 output lands within a step of the simulated one, which the point then re-quantizes: close or equal.
  EXPECT_LE((real - simulated).abs().max().item<double>(), 0.05 * simulated.abs().max().item<double>());
  EXPECT_GT(real.argmax(-1).eq(simulated.argmax(-1)).to(at::kFloat).mean().item<double>(), 0.9);

  // The kernels do run: in a float model, INT8 Linears alone change the logits, slightly.
  sim.restore();
  const auto fp32 = m->forward(x);
  int8.attach(*points);
  const auto int8_only = m->forward(x);
  points->set_linear_override(nullptr);
  EXPECT_FALSE(at::equal(int8_only, fp32));
  EXPECT_LT((int8_only - fp32).abs().max().item<double>(), 0.05 * fp32.abs().max().item<double>());
  EXPECT_TRUE(at::equal(m->forward(x), fp32));  // override removed
}

}  // namespace
}  // namespace outeffhop::analysis
