// sparsemax, entmax15 and entmax_bisect: hand-worked values, one table against the float64 bisection oracle, the
// identities between them, gradients (kernel backward, ATen formula, finite differences) and hostile rows.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/composites.h"
#include "outeffhop/sparse_maps.h"
#include "test_util.h"

namespace outeffhop {
namespace {

using namespace outeffhop::testing;

// The oracle's 200 bisection steps resolve tau to ~1e-16 of its bracket; the kernels' float64 sort-based closed
// forms agree to rounding of sums over the row.
constexpr double kTolOracleF64 = 1e-10;
// entmax_bisect's 50 default steps leave tau within 2^-50 of its bracket (~1e-15), then renormalise.
constexpr double kTolBisect50 = 1e-9;
// alpha -> 1 approaches softmax with an error of order alpha - 1.
constexpr double kTolNearSoftmax = 5e-3;

at::Tensor alpha_of(double a) { return at::full({}, a, at::kDouble); }

TEST(SparseMaps, HandWorkedValues) {
  const auto x = at::tensor({0.5, 0.2, -1.0}, at::kDouble);
  // sort: 0.5, 0.2, -1; support k = 2 (1 + 2*0.2 > 0.7, 1 - 3 < -0.3); tau = (0.7 - 1)/2 = -0.15.
  EXPECT_LE(max_abs_diff(sparsemax(x), at::tensor({0.65, 0.35, 0.0}, at::kDouble)), kTolF64);
  // entmax15([1, 0]): halved [0.5, 0]; k = 2: mean 0.25, delta = 0.4375, tau = 0.25 - sqrt(0.4375).
  const double tau = 0.25 - std::sqrt(0.4375);
  const auto expected = at::tensor({(0.5 - tau) * (0.5 - tau), tau * tau}, at::kDouble);
  EXPECT_LE(max_abs_diff(entmax15(at::tensor({1.0, 0.0}, at::kDouble)), expected), kTolF64);
  // A clear winner takes everything: exact zeros elsewhere (the point of sparse maps).
  EXPECT_TRUE(at::equal(sparsemax(at::tensor({3.0, 0.0, -3.0}, at::kDouble)),
                        at::tensor({1.0, 0.0, 0.0}, at::kDouble)));
}

enum class Input { kRandom, kWide, kWithNegInf, kTies, kHostile };

struct SparseCase {
  const char* name;
  std::vector<int64_t> shape;
  int64_t dim;
  Input input;
};

void PrintTo(const SparseCase& c, std::ostream* os) { *os << c.name; }

at::Tensor make_input(const SparseCase& c) {
  at::manual_seed(21);
  auto x = at::randn(c.shape, at::kDouble);
  switch (c.input) {
    case Input::kRandom: break;
    case Input::kWide: x = x * 10; break;
    case Input::kWithNegInf: x = at::where(at::rand(c.shape) > 0.7, at::full({}, -INFINITY, at::kDouble), x);
      x.select(c.dim, 0).fill_(0.0);  // every row keeps at least one finite entry
      break;
    case Input::kTies: x = at::round(x * 2) / 2; break;
    case Input::kHostile: x = at::where(at::rand(c.shape) > 0.5, at::full({}, 1e4, at::kDouble), x * 1e4); break;
  }
  return x;
}

class SparseMapTable : public ::testing::TestWithParam<SparseCase> {};

TEST_P(SparseMapTable, MatchOracleSumToOneAndAgreeWithEachOther) {
  const auto& c = GetParam();
  const auto x = make_input(c);
  const double hostile = c.input == Input::kHostile ? 1e4 : 1.0;
  for (const auto& [name, alpha] : {std::pair{"sparsemax", 2.0}, std::pair{"entmax15", 1.5}}) {
    const auto out = alpha == 2.0 ? sparsemax(x, c.dim) : entmax15(x, c.dim);
    const auto ref = reference::entmax_by_bisection(x, alpha_of(alpha), c.dim);
    EXPECT_LE(max_abs_diff(out, ref), kTolOracleF64 * hostile) << name;
    EXPECT_LE(max_abs_diff(out.sum(c.dim), at::ones({}, at::kDouble)), kTolOracleF64) << name;
    EXPECT_GE(out.min().item<double>(), 0.0) << name;
    // Same map through the bisection kernel.
    EXPECT_LE(max_abs_diff(entmax_bisect(x, alpha_of(alpha), c.dim), out), kTolBisect50 * hostile) << name;
    // float32: same answer to float32 rounding of the scores.
    const auto out32 = alpha == 2.0 ? sparsemax(x.to(at::kFloat), c.dim) : entmax15(x.to(at::kFloat), c.dim);
    EXPECT_LE(max_abs_diff(out32, out), kTolF32 * hostile) << name;
  }
  for (const double alpha : {1.25, 3.0}) {
    EXPECT_LE(max_abs_diff(entmax_bisect(x, alpha_of(alpha), c.dim),
                           reference::entmax_by_bisection(x, alpha_of(alpha), c.dim)),
              kTolBisect50 * hostile)
        << "alpha " << alpha;
  }
}

TEST_P(SparseMapTable, KernelBackwardMatchesFormulaAndFiniteDifferences) {
  const auto& c = GetParam();
  if (c.input == Input::kHostile || c.input == Input::kTies) GTEST_SKIP() << "kinks: finite differences undefined";
  const auto x = make_input(c);
  const auto w = at::randn(c.shape, at::kDouble);
  auto shape = x.sizes().vec();
  shape[c.dim < 0 ? c.dim + x.dim() : c.dim] = 1;
  const auto alpha = 1.2 + at::rand(shape, at::kDouble);  // one alpha per row, in (1.2, 2.2)
  auto loss_sparsemax = [&](const at::Tensor& t) { return (sparsemax(t, c.dim) * w).sum(); };
  auto loss_entmax15 = [&](const at::Tensor& t) { return (entmax15(t, c.dim) * w).sum(); };
  auto loss_bisect = [&](const at::Tensor& t) { return (entmax_bisect(t, alpha, c.dim) * w).sum(); };
  auto loss_alpha = [&](const at::Tensor& a) { return (entmax_bisect(x, a, c.dim) * w).sum(); };
  if (c.input != Input::kWithNegInf) {  // finite differences need finite inputs
    EXPECT_LE(max_abs_diff(autograd_grad(loss_sparsemax, x), numeric_grad(loss_sparsemax, x)), kTolFiniteDiff);
    EXPECT_LE(max_abs_diff(autograd_grad(loss_entmax15, x), numeric_grad(loss_entmax15, x)), kTolFiniteDiff);
    EXPECT_LE(max_abs_diff(autograd_grad(loss_bisect, x), numeric_grad(loss_bisect, x)), 1e-5);
  }
  EXPECT_LE(max_abs_diff(autograd_grad(loss_alpha, alpha), numeric_grad(loss_alpha, alpha)), 1e-5);
  // The kernel's backward against the differentiable formula (used for double backward).
  const auto out = entmax_bisect(x, alpha, c.dim);
  auto leaf_x = x.clone().requires_grad_(), leaf_a = alpha.clone().requires_grad_();
  (entmax_bisect(leaf_x, leaf_a, c.dim) * w).sum().backward();
  const auto [gx, ga] = detail::sparse_map_backward_formula(w, out, x, alpha, c.dim);
  EXPECT_LE(max_abs_diff(leaf_x.grad(), gx), 1e-9);
  EXPECT_LE(max_abs_diff(leaf_a.grad(), ga), 1e-9);
}

// The ATen compositions behind the CUDA registrations, checked here on CPU against the CPU kernels (and so the
// oracle): the same maps by another algorithm (sort on whole rows, plain bisection), in float64 and float32.
TEST_P(SparseMapTable, AtenCompositionsForGpusMatchTheCpuKernels) {
  const auto& c = GetParam();
  const auto x = make_input(c);
  const double hostile = c.input == Input::kHostile ? 1e4 : 1.0;
  auto shape = x.sizes().vec();
  shape[c.dim < 0 ? c.dim + x.dim() : c.dim] = 1;
  const auto alpha = 1.2 + at::rand(shape, at::kDouble);
  const double tolerance[] = {kTolOracleF64, kTolF32};
  int i = 0;
  for (const auto type : {at::kDouble, at::kFloat}) {
    const auto xt = x.to(type), at_ = alpha.to(type);
    const double tol = tolerance[i++] * hostile;
    EXPECT_LE(max_abs_diff(detail::sparsemax_composite(xt, c.dim), sparsemax(xt, c.dim)), tol) << type;
    EXPECT_LE(max_abs_diff(detail::entmax15_composite(xt, c.dim), entmax15(xt, c.dim)), tol) << type;
    const auto bisect = detail::entmax_bisect_composite(xt, at_, c.dim, 50);
    EXPECT_LE(max_abs_diff(bisect, entmax_bisect(xt, at_, c.dim)), std::max(tol, kTolBisect50 * hostile)) << type;
    EXPECT_EQ(bisect.scalar_type(), type);
  }
  const auto half = detail::sparsemax_composite(x.to(at::kBFloat16), c.dim);  // computed in float32
  EXPECT_EQ(half.scalar_type(), at::kBFloat16);
  EXPECT_LE(max_abs_diff(half, sparsemax(x.to(at::kBFloat16), c.dim)), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SparseMapTable,
    ::testing::Values(SparseCase{"one_column", {4, 1}, 1, Input::kRandom},
                      SparseCase{"two_columns", {5, 2}, -1, Input::kRandom},
                      SparseCase{"odd_rows_middle_dim", {3, 7, 2}, 1, Input::kRandom},
                      SparseCase{"wide_scores", {6, 50}, 1, Input::kWide},
                      SparseCase{"long_rows", {2, 300}, -1, Input::kRandom},
                      SparseCase{"masked_entries", {5, 9}, 1, Input::kWithNegInf},
                      SparseCase{"ties", {4, 8}, 1, Input::kTies},
                      SparseCase{"hostile_1e4", {4, 8}, 1, Input::kHostile}),
    [](const ::testing::TestParamInfo<SparseCase>& info) { return std::string(info.param.name); });

// For alpha <= 2 (GSH's range) the header promises convergence in a few steps, not 50: 6 must reach the oracle
// (Halley's steps reach it in 5 here; Newton's, used before, missed it at 6 by 1e-8).
TEST(SparseMaps, BisectionConvergesInAFewHalleySteps) {
  at::manual_seed(5);
  const auto spread = at::tensor({0.1, 1.0, 3.0, 10.0}, at::kDouble).view({4, 1, 1});
  const auto x = (at::randn({4, 64, 28}, at::kDouble) * spread).view({-1, 28});
  for (const double alpha : {1.05, 1.5, 1.9, 2.0}) {
    EXPECT_LE(max_abs_diff(entmax_bisect(x, alpha_of(alpha), -1, 6),
                           reference::entmax_by_bisection(x, alpha_of(alpha), -1)),
              kTolBisect50)
        << "alpha " << alpha;
  }
}

TEST(SparseMaps, NearOneAlphaApproachesSoftmax) {
  const auto x = at::randn({4, 10}, at::kDouble);
  EXPECT_LE(max_abs_diff(entmax_bisect(x, alpha_of(1.001)), at::softmax(x, -1)), kTolNearSoftmax);
}

TEST(SparseMaps, HostileRowsAreDefined) {
  auto x = at::randn({3, 5}, at::kFloat);
  x[0].fill_(-INFINITY);  // fully masked: zeros
  x[1][2] = NAN;          // NaN poisons only its row
  for (const auto& out : {sparsemax(x), entmax15(x), entmax_bisect(x, at::full({}, 1.3)),
                          detail::sparsemax_composite(x, -1), detail::entmax15_composite(x, -1),
                          detail::entmax_bisect_composite(x, at::full({}, 1.3), -1, 50)}) {
    EXPECT_EQ(out[0].abs().sum().item<double>(), 0.0);
    EXPECT_TRUE(out[1].isnan().all().item<bool>());
    EXPECT_NEAR(out[2].sum().item<double>(), 1.0, kTolF32);
  }
}

TEST(SparseMaps, RejectBadArgumentsClearly) {
  const auto x = at::randn({3, 4});
  EXPECT_THROW(sparsemax(at::ones({}, at::kFloat)), c10::Error);                 // scalar
  EXPECT_THROW(entmax15(at::ones({3}, at::kLong)), c10::Error);                  // integer
  EXPECT_THROW(sparsemax(x, 2), c10::Error);                                     // dim out of range
  EXPECT_THROW(entmax_bisect(x, at::full({}, 1.0)), c10::Error);                  // alpha must be > 1
  EXPECT_THROW(entmax_bisect(x, at::full({3, 4}, 1.5)), c10::Error);              // one alpha per row, not per entry
  EXPECT_THROW(entmax_bisect(x, at::full({}, 1.5), -1, 0), c10::Error);           // n_iter >= 1
  EXPECT_NO_THROW(entmax_bisect(x, at::full({3, 1}, 1.5)));
}

}  // namespace
}  // namespace outeffhop
