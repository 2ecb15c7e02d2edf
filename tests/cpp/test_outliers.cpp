// Outlier metrics, quantizers, streaming statistics and range estimators: hand computations, distributions with known
// kurtosis, quantizer edge cases (ties, ranges without 0, constants, 2-8 bits), straight-through gradients.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "outeffhop/analysis/activation_peaks.h"
#include "outeffhop/analysis/attention_use.h"
#include "outeffhop/analysis/outlier_stats.h"
#include "outeffhop/analysis/range_estimator.h"
#include "outeffhop/outliers.h"
#include "test_util.h"

namespace outeffhop {
namespace {

using namespace outeffhop::testing;

TEST(Outliers, KurtosisAndInfNormByHand) {
  const auto x = at::tensor({1.0, 2.0, 3.0, 4.0}, at::kDouble).view({1, 2, 2});
  // centred: -1.5 -0.5 0.5 1.5; mean of 4th powers 2.5625; unbiased variance 5/3, so std^4 = 25/9.
  EXPECT_NEAR(kurtosis(x).item<double>(), 2.5625 / (25.0 / 9.0 + 1e-6), 1e-12);
  EXPECT_EQ(inf_norm(at::tensor({-7.0, 3.0, 2.0, -1.0}, at::kDouble).view({2, 2})).equal(at::tensor({7.0, 2.0}, at::kDouble)),
            true);
  EXPECT_EQ(kurtosis(at::full({3, 5}, 2.0)).abs().max().item<double>(), 0.0);  // constant rows: 0 / (0 + 1e-6)
  EXPECT_THROW(kurtosis(at::ones({3, 1})), c10::Error);                      // one value: no unbiased std
  EXPECT_THROW(kurtosis(at::ones({3}, at::kLong)), c10::Error);
}

TEST(Outliers, KurtosisOfGaussianIsThreeAndOfLaplaceSix) {
  at::manual_seed(0);
  const auto gauss = at::randn({2, 1000000}, at::kDouble);
  const auto u = at::rand({2, 1000000}, at::kDouble) - 0.5;
  const auto laplace = -at::sign(u) * at::log(1 - 2 * u.abs());
  EXPECT_NEAR(kurtosis(gauss).mean().item<double>(), 3.0, 0.03);
  EXPECT_NEAR(kurtosis(laplace).mean().item<double>(), 6.0, 0.15);
  EXPECT_NEAR(kurtosis(gauss.to(at::kFloat)).mean().item<double>(), 3.0, 0.03);  // accumulated in float64
}

TEST(Quantizers, AsymmetricTiesRangesAndConstants) {
  // Range [0, 255] with 8 bits: delta 1, zero point 0; halves round to even.
  const auto ties = at::tensor({0.5, 1.5, 2.5, 3.5, 254.5, 300.0, -4.0}, at::kDouble);
  EXPECT_TRUE(fake_quant_asym(ties, 0, 255).equal(at::tensor({0.0, 2.0, 2.0, 4.0, 254.0, 255.0, 0.0}, at::kDouble)));
  // A range without 0 is extended to contain it, so 0 stays exactly 0 and the ends are exact.
  const auto x = at::tensor({0.0, 2.0, 5.0, 3.3}, at::kDouble);
  const auto q = fake_quant_asym(x, 2.0, 5.0);
  EXPECT_EQ(q[0].item<double>(), 0.0);
  EXPECT_NEAR(q[2].item<double>(), 5.0, 1e-12);
  EXPECT_NEAR(q[3].item<double>(), 3.3, 5.0 / 255 / 2 + 1e-12);  // within half a step
  EXPECT_EQ(fake_quant_asym(at::tensor({-1.0, 0.0}, at::kDouble), -4.0, -1.0)[1].item<double>(), 0.0);
  // Constant tensors, and a zero-width range.
  EXPECT_NEAR(fake_quant_asym(at::full({4}, 3.0, at::kDouble), 3.0, 3.0).max().item<double>(), 3.0, 1e-12);
  EXPECT_EQ(fake_quant_asym(at::randn({5}), 0.0, 0.0).abs().max().item<double>(), 0.0);
  EXPECT_THROW(fake_quant_asym(x, 1.0, 0.0), c10::Error);
  EXPECT_THROW(fake_quant_asym(x, 0.0, 1.0, 1), c10::Error);
}

TEST(Quantizers, LevelsForTwoToEightBits) {
  at::manual_seed(1);
  const auto x = at::randn({20000}, at::kDouble) * 3;
  const auto w = at::randn({20000}, at::kDouble);
  for (int64_t bits = 2; bits <= 8; ++bits) {
    const auto qa = fake_quant_asym(x, -2.0, 5.0, bits);
    EXPECT_LE(std::get<0>(at::_unique(qa)).numel(), int64_t{1} << bits) << bits;
    const double step = 7.0 / ((int64_t{1} << bits) - 1);
    const auto inside = (x >= -2.0).logical_and(x <= 5.0);
    EXPECT_LE((qa - x).masked_select(inside).abs().max().item<double>(), step / 2 + 1e-9) << bits;
    const auto qs = fake_quant_sym(w, bits);
    EXPECT_LE(std::get<0>(at::_unique(qs)).numel(), int64_t{1} << bits) << bits;
    const double delta = w.abs().max().item<double>() / ((int64_t{1} << (bits - 1)) - 1);
    EXPECT_NEAR(qs.abs().max().item<double>(), w.abs().max().item<double>(), 1e-12) << bits;  // max maps exactly
    EXPECT_LE((qs - w).abs().max().item<double>(), delta / 2 + 1e-12) << bits;
  }
  EXPECT_EQ(fake_quant_sym(at::zeros({4})).abs().max().item<double>(), 0.0);
}

TEST(Quantizers, StraightThroughGradients) {
  auto x = at::tensor({-3.0, 0.2, 0.7, 4.0}, at::kDouble).requires_grad_();
  fake_quant_asym(x, -1.0, 1.0).sum().backward();
  EXPECT_TRUE(x.grad().equal(at::tensor({0.0, 1.0, 1.0, 0.0}, at::kDouble)));  // 0 outside the range
  auto w = at::randn({6}, at::kDouble).requires_grad_();
  fake_quant_sym(w).sum().backward();
  EXPECT_TRUE(w.grad().equal(at::ones({6}, at::kDouble)));
}

TEST(OutlierStats, AggregationEqualsAHandComputation) {
  analysis::OutlierStats stats;
  const auto a = at::tensor({1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0}, at::kDouble).view({2, 4});
  const auto b = at::tensor({-5.0, 1.0, 1.0, 1.0}, at::kDouble).view({1, 4});
  stats.add("model.layers.0.fc2", a.narrow(0, 0, 1));
  stats.add("model.layers.0.fc2", a.narrow(0, 1, 1));  // streamed in two batches
  stats.add("model.layers.1.fc2", b);
  stats.add("model.final_layer_norm", b * 2);
  const auto ka = kurtosis(a), kb = kurtosis(b), kb2 = kurtosis(b * 2);  // the 1e-6 makes kurtosis scale-dependent
  const auto mods = stats.modules();
  ASSERT_EQ(mods.size(), 3u);
  EXPECT_EQ(mods[0].rows, 2);
  EXPECT_NEAR(mods[0].mean_kurtosis, ka.mean().item<double>(), 1e-12);
  EXPECT_NEAR(mods[0].mean_inf_norm, (4.0 + 8.0) / 2, 1e-12);
  EXPECT_NEAR(mods[0].max_inf_norm, 8.0, 1e-12);
  const auto s = stats.summary();
  EXPECT_NEAR(s.avg_kurtosis, (ka.mean().item<double>() + kb.item<double>() + kb2.item<double>()) / 3, 1e-12);
  EXPECT_NEAR(s.max_inf_norm, 10.0, 1e-12);  // the final norm's rows: |-10|
  const auto layers = stats.per_layer();
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_NEAR(layers.at(0).max_inf_norm, 6.0, 1e-12);
  EXPECT_NEAR(layers.at(1).max_inf_norm, 5.0, 1e-12);
  EXPECT_NEAR(layers.at(-1).max_inf_norm, 10.0, 1e-12);
}

TEST(ActivationPeaks, LocationsAndUsualPositionByHand) {
  analysis::ActivationPeaks peaks;
  auto first = at::zeros({2, 3, 4});  // samples 0-1: largest |x| at position 0 (5) and position 2 (|-7|)
  first[0][0][1] = 5.0, first[1][2][3] = -7.0;
  auto second = at::zeros({3, 3, 4});  // samples 2-4: all-zero samples count position 0; sample 4 peaks at 1
  second[2][1][0] = 9.0;
  peaks.add("block", first);
  peaks.add("block", second);
  peaks.add("pooled", at::tensor({1.0f, -3.0f, 2.0f}).view({1, 3}));  // B x d: one position
  peaks.add("series", at::arange(24, at::kFloat).view({1, 2, 3, 4}));  // middle dims flattened: 6 positions
  EXPECT_THROW(peaks.add("scalar_rows", at::ones({3})), c10::Error);
  const auto p = peaks.peaks();
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].module, "block");
  EXPECT_DOUBLE_EQ(p[0].value, 9.0);
  EXPECT_EQ(p[0].sample, 4);  // counted over both batches
  EXPECT_EQ(p[0].position, 1);
  EXPECT_EQ(p[0].dim, 0);
  EXPECT_EQ(p[0].samples, 5);
  EXPECT_EQ(p[0].usual_position, 0);
  EXPECT_DOUBLE_EQ(p[0].usual_share, 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(p[1].value, 3.0);
  EXPECT_EQ(p[1].position, 0);
  EXPECT_EQ(p[1].dim, 1);
  EXPECT_DOUBLE_EQ(p[2].value, 23.0);
  EXPECT_EQ(p[2].position, 5);
  EXPECT_EQ(p[2].dim, 3);
}

TEST(AttentionUse, RowMassLowRowsAndFirstKeyByHand) {
  analysis::AttentionUse use;
  use.add("layer.0", at::tensor({0.5, 0.5, 0.1, 0.1}).view({1, 2, 2}));  // rows of mass 1 and 0.2
  use.add("layer.1", at::zeros({2, 1, 3, 4}));                            // abstains: 6 rows of mass 0
  use.add("layer.0", at::tensor({1.0f, 0.0f}).view({1, 1, 2}));           // float input; mass 1 on the first key
  EXPECT_THROW(use.add("scalar", at::ones({3})), c10::Error);
  const auto p = use.points();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].point, "layer.0");
  EXPECT_EQ(p[0].rows, 3);
  EXPECT_NEAR(p[0].mean_mass, (1.0 + 0.2 + 1.0) / 3, 1e-12);
  EXPECT_NEAR(p[0].low_mass_share, 1.0 / 3, 1e-12);
  EXPECT_NEAR(p[0].first_key_mass, (0.5 + 0.1 + 1.0) / 3, 1e-12);
  EXPECT_EQ(p[0].spread_rows, 3);
  EXPECT_NEAR(p[0].mean_entropy, (std::log(2.0) + std::log(2.0) + 0.0) / 3, 1e-12);  // 0.1, 0.1 spreads as 0.5, 0.5
  EXPECT_EQ(p[1].rows, 6);
  EXPECT_EQ(p[1].mean_mass, 0.0);
  EXPECT_EQ(p[1].low_mass_share, 1.0);
  EXPECT_EQ(p[1].spread_rows, 0);  // no row gives mass: no entropy
  EXPECT_EQ(p[1].mean_entropy, 0.0);
  EXPECT_EQ(p[0].gates, 0);  // not gated
}

TEST(AttentionUse, GatesMeanAndLowShareByHand) {
  analysis::AttentionUse use;
  use.add("layer.0", at::full({1, 2, 3, 3}, 1.0 / 3, at::kDouble));  // 6 softmax rows
  use.add_gates("layer.0", at::tensor({0.1, 0.9, 0.4, 0.5}).view({1, 2, 2, 1}));  // B x H x T x 1
  use.add_gates("layer.0", at::tensor({1.0f, 0.0f}).view({1, 2, 1, 1}));
  use.add_gates("gates.only", at::tensor({0.25}));
  const auto p = use.points();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].rows, 6);
  EXPECT_NEAR(p[0].mean_mass, 1.0, 1e-12);
  EXPECT_NEAR(p[0].mean_entropy, std::log(3.0), 1e-12);  // three keys alike
  EXPECT_EQ(p[0].gates, 6);
  EXPECT_NEAR(p[0].mean_gate, (0.1 + 0.9 + 0.4 + 0.5 + 1.0 + 0.0) / 6, 1e-12);
  EXPECT_NEAR(p[0].low_gate_share, 3.0 / 6, 1e-12);  // 0.1, 0.4 and 0; 0.5 is not below one half
  EXPECT_EQ(p[1].point, "gates.only");
  EXPECT_EQ(p[1].rows, 0);
  EXPECT_EQ(p[1].gates, 1);
  EXPECT_EQ(p[1].low_gate_share, 1.0);
}

TEST(RangeEstimator, MethodsByHandAndDeterministic) {
  using analysis::RangeEstimator;
  using analysis::RangeMethod;
  const auto first = at::tensor({-1.0, 0.5, 2.0}, at::kDouble), second = at::tensor({-3.0, 4.0}, at::kDouble);
  RangeEstimator running({RangeMethod::kRunningMinMax});
  running.observe(first);
  running.observe(second);
  EXPECT_NEAR(running.range().first, 0.9 * -1 + 0.1 * -3, 1e-12);
  EXPECT_NEAR(running.range().second, 0.9 * 2 + 0.1 * 4, 1e-12);
  RangeEstimator current({RangeMethod::kCurrentMinMax});
  current.observe(first);
  current.observe(second);
  EXPECT_EQ(current.range(), std::make_pair(-3.0, 4.0));
  current.freeze();
  current.observe(first * 100);
  EXPECT_EQ(current.range(), std::make_pair(-3.0, 4.0));  // frozen
  RangeEstimator percentile({RangeMethod::kPercentile, 0.9, 99.0});
  percentile.observe(at::arange(0, 100001, at::kDouble));
  EXPECT_NEAR(percentile.range().first, 1000.0, 1.0);
  EXPECT_NEAR(percentile.range().second, 99000.0, 1.0);
  // MSE search on data with one outlier: a narrower range with a smaller error than min-max; repeatable.
  at::manual_seed(3);
  auto data = at::randn({5000}, at::kDouble);
  data[0] = 200.0;
  RangeEstimator mse({RangeMethod::kMse}), mse_again({RangeMethod::kMse});
  mse.observe(data);
  mse_again.observe(data);
  EXPECT_EQ(mse.range(), mse_again.range());
  EXPECT_LT(mse.range().second, 200.0);
  auto error = [&](std::pair<double, double> r) {
    return (fake_quant_asym(data, r.first, r.second) - data).pow(2).sum().item<double>();
  };
  EXPECT_LT(error(mse.range()), error({data.min().item<double>(), 200.0}));
  EXPECT_THROW(RangeEstimator().range(), c10::Error);
  EXPECT_THROW(analysis::parse_range_method("max"), c10::Error);
}

}  // namespace
}  // namespace outeffhop
