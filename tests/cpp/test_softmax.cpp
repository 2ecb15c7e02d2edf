// softmax_n, clipped_softmax_n and null_mass against float64 oracles, the paper's values and hostile inputs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "outeffhop/softmax.h"
#include "test_util.h"

namespace outeffhop {
namespace {

using namespace outeffhop::testing;

struct SoftmaxCase {
  std::vector<int64_t> shape;
  int64_t dim;
  double n;
  at::ScalarType dtype;
  bool transpose;  // feed a non-contiguous view
};

double tolerance(at::ScalarType t) {
  return t == at::kDouble ? kTolF64 : t == at::kFloat ? kTolF32 : kTolBF16;
}

void PrintTo(const SoftmaxCase& c, std::ostream* os) {
  *os << "shape " << c10::IntArrayRef(c.shape) << " dim " << c.dim << " n " << c.n << " " << c.dtype
      << (c.transpose ? " transposed" : "");
}

class SoftmaxNTable : public ::testing::TestWithParam<SoftmaxCase> {};

TEST_P(SoftmaxNTable, MatchesReferenceAndIdentity) {
  const auto& c = GetParam();
  at::manual_seed(7);
  auto x = (at::randn(c.shape, at::kDouble) * 4).to(c.dtype);
  if (c.transpose) x = x.transpose(0, -1);
  const auto got = softmax_n(x, c.n, c.dim);
  ASSERT_EQ(got.scalar_type(), c.dtype);
  ASSERT_EQ(got.sizes(), x.sizes());
  const auto ref = reference::softmax_n(x, c.n, c.dim);
  const auto via_extra = reference::softmax_n_via_extra_logit(x, c.n, c.dim);
  EXPECT_LE(max_abs_diff(got, ref), tolerance(c.dtype));
  EXPECT_LE(max_abs_diff(ref, via_extra), kTolF64);  // the two oracles agree with each other
  // Rows sum to 1 - null mass, which is exactly n / (n + sum exp).
  const auto mass = 1 - ref.sum(c.dim);
  EXPECT_LE(max_abs_diff(null_mass(x.to(at::kDouble), c.n, c.dim), mass), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SoftmaxNTable,
    ::testing::Values(SoftmaxCase{{5}, 0, 1.0, at::kDouble, false}, SoftmaxCase{{1}, 0, 1.0, at::kFloat, false},
                      SoftmaxCase{{3, 7}, -1, 1.0, at::kFloat, false}, SoftmaxCase{{3, 7}, 0, 1.0, at::kFloat, false},
                      SoftmaxCase{{4, 9}, 1, 0.0, at::kDouble, false}, SoftmaxCase{{4, 9}, 1, 3.0, at::kDouble, false},
                      SoftmaxCase{{2, 3, 33}, 1, 1.0, at::kFloat, true},
                      SoftmaxCase{{2, 5, 130}, -1, 0.5, at::kBFloat16, false},
                      SoftmaxCase{{2, 3, 4, 1000}, -1, 1.0, at::kFloat, false},
                      SoftmaxCase{{6, 17}, -1, 1e-3, at::kDouble, true}),
    [](const ::testing::TestParamInfo<SoftmaxCase>& info) {
      std::string name = "case" + std::to_string(info.index) + "_rank" + std::to_string(info.param.shape.size()) +
                         "_" + c10::toString(info.param.dtype);
      return info.param.transpose ? name + "_strided" : name;
    });

TEST(SoftmaxN, PaperAppendixB1Values) {
  const auto low = at::full({3}, -10.0, at::kDouble);
  const auto soft = softmax_n(low, 0.0);
  const auto soft1 = softmax_n(low, 1.0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(soft[i].item<double>(), 1.0 / 3, 1e-12);
    // e^-10 / (1 + 3 e^-10) = 4.5394e-5: the head abstains instead of spreading mass.
    EXPECT_NEAR(soft1[i].item<double>(), std::exp(-10.0) / (1 + 3 * std::exp(-10.0)), 1e-15);
    EXPECT_NEAR(soft1[i].item<double>(), 4.5e-5, 0.05e-5);
  }
  const auto peaked = softmax_n(at::tensor({100.0, -10.0, -10.0}, at::kDouble), 0.0);
  EXPECT_NEAR(peaked[0].item<double>(), 1.0, 1e-15);
  EXPECT_NEAR(peaked[1].item<double>() / 1.6889118e-48, 1.0, 1e-6);  // e^-110 ~ 2e-48 as the paper says
}

TEST(SoftmaxN, ZeroNIsSoftmax) {
  const auto x = at::randn({8, 13}, at::kDouble);
  EXPECT_LE(max_abs_diff(softmax_n(x, 0.0, -1), at::softmax(x, -1)), kTolF64);
}

TEST(SoftmaxN, HostileInputsGiveDefinedResults) {
  const double inf = INFINITY;
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    // +-1e4 logits: no overflow; the reference in double says what is right.
    const auto big = at::tensor({1e4, -1e4, 1e4 - 1, 0.0}, at::kDouble).to(dtype);
    EXPECT_LE(max_abs_diff(softmax_n(big, 1.0), reference::softmax_n(big, 1.0, -1)), kTolF32);
    // All logits far below zero: softmax_1 gives ~0 (not 0/0), softmax stays normalised.
    const auto tiny = at::full({4}, -1e4, dtype);
    EXPECT_EQ(softmax_n(tiny, 1.0).abs().max().item<double>(), 0.0);
    EXPECT_NEAR(softmax_n(tiny, 0.0).sum().item<double>(), 1.0, 1e-6);
    // Fully masked rows: zeros for every n, including n = 0 (defined, not NaN).
    const auto masked = at::full({2, 5}, -inf, dtype);
    for (const double n : {0.0, 1.0, 7.0}) {
      const auto p = softmax_n(masked, n);
      EXPECT_FALSE(p.isnan().any().item<bool>()) << "n=" << n;
      EXPECT_EQ(p.abs().max().item<double>(), 0.0) << "n=" << n;
    }
    // Partly masked rows ignore the masked entries.
    const auto part = at::tensor({0.5, -inf, 2.0}, at::kDouble).to(dtype);
    const auto p = softmax_n(part, 1.0);
    EXPECT_EQ(p[1].item<double>(), 0.0);
    EXPECT_NEAR(p[2].item<double>(), std::exp(2.0) / (1 + std::exp(0.5) + std::exp(2.0)), 1e-6);
    // +inf logits take all the mass, shared equally.
    const auto pinf = softmax_n(at::tensor({inf, 3.0, inf}, at::kDouble).to(dtype), 1.0);
    EXPECT_NEAR(pinf[0].item<double>(), 0.5, 0);
    EXPECT_NEAR(pinf[1].item<double>(), 0.0, 0);
    // NaN anywhere poisons its own row only.
    auto withnan = at::zeros({2, 3}, dtype);
    withnan[0][1] = NAN;
    const auto pn = softmax_n(withnan, 1.0);
    EXPECT_TRUE(pn[0].isnan().all().item<bool>());
    EXPECT_FALSE(pn[1].isnan().any().item<bool>());
  }
}

TEST(SoftmaxN, GradientsMatchFiniteDifferencesAndAutogradOfReference) {
  at::manual_seed(3);
  const auto x = at::randn({3, 6}, at::kDouble) * 3;
  const auto w = at::randn({3, 6}, at::kDouble);  // a random linear functional makes every Jacobian entry count
  for (const double n : {0.0, 1.0, 4.0}) {
    for (const int64_t dim : {0, 1}) {
      auto ours = [&](const at::Tensor& t) { return (softmax_n(t, n, dim) * w).sum(); };
      auto ref = [&](const at::Tensor& t) { return (reference::softmax_n(t, n, dim) * w).sum(); };
      const auto g = autograd_grad(ours, x);
      EXPECT_LE(max_abs_diff(g, numeric_grad(ours, x)), kTolFiniteDiff) << "n=" << n << " dim=" << dim;
      EXPECT_LE(max_abs_diff(g, autograd_grad(ref, x)), kTolF64 * 10) << "n=" << n << " dim=" << dim;
    }
  }
}

TEST(SoftmaxN, GradientsFiniteOnMaskedAndExtremeRows) {
  const double inf = INFINITY;
  const auto x = at::tensor({-inf, -inf, -inf, -200.0, -150.0, -inf, 1e4, -1e4, 0.0}, at::kDouble).view({3, 3});
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    for (const double n : {0.0, 1.0}) {
      const auto g = autograd_grad([&](const at::Tensor& t) { return softmax_n(t, n).pow(2).sum(); }, x.to(dtype));
      EXPECT_TRUE(g.isfinite().all().item<bool>()) << "n=" << n << " dtype=" << dtype;
      EXPECT_EQ(g[0].abs().max().item<double>(), 0.0);  // nothing flows into a fully masked row
    }
  }
}

TEST(SoftmaxN, DoubleBackwardMatchesFiniteDifferences) {
  const auto x = at::randn({2, 5}, at::kDouble);
  const auto v = at::randn({2, 5}, at::kDouble);
  // d/dx <grad_x f, v> with f = sum(softmax_1(x)^3): needs a differentiable backward.
  auto gv = [&](const at::Tensor& t) {
    at::AutoGradMode grad_on(true);  // numeric_grad evaluates under no_grad; this needs a graph
    auto leaf = t.requires_grad() ? t : t.detach().clone().set_requires_grad(true);
    auto f = softmax_n(leaf, 1.0).pow(3).sum();
    auto grads = torch::autograd::grad({f}, {leaf}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    return (grads[0] * v).sum();
  };
  EXPECT_LE(max_abs_diff(autograd_grad(gv, x), numeric_grad(gv, x)), kTolFiniteDiff);
}

TEST(SoftmaxN, RejectsBadArguments) {
  const auto x = at::randn({2, 3});
  EXPECT_THROW(softmax_n(x, -1.0), c10::Error);
  EXPECT_THROW(softmax_n(x, NAN), c10::Error);
  EXPECT_THROW(softmax_n(x, 1.0, 2), c10::Error);
  EXPECT_THROW(softmax_n(at::ones({3}, at::kLong), 1.0), c10::Error);
  try {
    softmax_n(x, -0.5);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("n (the no-op mass) must be finite and >= 0"), std::string::npos);
  }
  // Empty input is a valid (empty) result, as for torch.softmax.
  EXPECT_EQ(softmax_n(at::randn({0, 4}), 1.0).numel(), 0);
}

TEST(ClippedSoftmaxN, MatchesDefinitionAndClips) {
  const auto x = at::randn({4, 10}, at::kDouble) * 5;
  for (const double n : {0.0, 1.0}) {
    const double gamma = -0.025, eta = 1.0;  // Bondarenko et al.'s BERT setting
    const auto got = clipped_softmax_n(x, n, gamma, eta);
    const auto want = at::clamp((eta - gamma) * reference::softmax_n(x, n, -1) + gamma, 0, 1);
    EXPECT_LE(max_abs_diff(got, want), kTolF64);
    EXPECT_GE(got.min().item<double>(), 0.0);
  }
  // Exact zeros become reachable: entries with p < -gamma / (eta - gamma) are clipped to 0.
  const auto low = clipped_softmax_n(at::tensor({5.0, -5.0, -5.0}, at::kDouble), 1.0, -0.025, 1.0);
  EXPECT_EQ(low[1].item<double>(), 0.0);
  EXPECT_THROW(clipped_softmax_n(x, 1.0, 1.0, 0.5), c10::Error);
}

TEST(ClippedSoftmaxN, GradientMatchesFiniteDifferences) {
  const auto x = at::randn({3, 5}, at::kDouble);
  const auto w = at::randn({3, 5}, at::kDouble);
  auto f = [&](const at::Tensor& t) { return (clipped_softmax_n(t, 1.0, -0.1, 1.1) * w).sum(); };
  EXPECT_LE(max_abs_diff(autograd_grad(f, x), numeric_grad(f, x)), kTolFiniteDiff);
}

TEST(NullMass, IsExactWhereOneMinusSumWouldCancel) {
  const auto x = at::full({1, 3}, 30.0, at::kFloat);  // n / (n + 3 e^30) ~ 3e-14, far below float32 epsilon
  const double want = 1.0 / (1.0 + 3 * std::exp(30.0));
  EXPECT_NEAR(null_mass(x, 1.0).item<double>() / want, 1.0, 1e-5);
  EXPECT_EQ(null_mass(x, 0.0).item<double>(), 0.0);
}

}  // namespace
}  // namespace outeffhop
