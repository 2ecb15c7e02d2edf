// The memory-experiment harnesses against float64 hand computations, the UHN identity softmax == softmax_1,
// repeatability under seeds, and clear errors for bad options.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "outeffhop/memory_experiments.h"
#include "test_util.h"

namespace outeffhop::memory {
namespace {

using namespace outeffhop::testing;

at::Tensor tiny_memories() {
  return at::tensor({0.9, 0.1, 0.0, 0.2, 0.0, 0.8, 0.3, 0.1, 0.5, 0.5, 0.5, 0.0}, at::kDouble).view({3, 4});
}

TEST(MemoryHarness, UhnMatchesAHandComputation) {
  const auto X = tiny_memories();
  const auto z = at::tensor({0.9, 0.0, 0.0, 0.0}, at::kDouble).view({1, 4});
  SeparationParams params;
  params.beta = 5.0;
  // s = X z = [0.81, 0, 0.45]; s / sum s; softmax(5 s); renormalise; out = X^T p.
  const double s0 = 0.81 / 1.26, s1 = 0.0, s2 = 0.45 / 1.26;
  const double e0 = std::exp(5 * s0), e1 = std::exp(5 * s1), e2 = std::exp(5 * s2), total = e0 + e1 + e2;
  const auto expected = (X[0] * (e0 / total) + X[1] * (e1 / total) + X[2] * (e2 / total)).view({1, 4});
  EXPECT_LE(max_abs_diff(retrieve_uhn(X, z, Separation::kSoftmax, params), expected), 1e-12);
  // poly10 on the normalised scores: s^10 / sum s^10.
  const double p0 = std::pow(s0, 10), p2 = std::pow(s2, 10);
  const auto poly = ((X[0] * p0 + X[2] * p2) / (p0 + p2)).view({1, 4});
  EXPECT_LE(max_abs_diff(retrieve_uhn(X, z, Separation::kPoly10, params), poly), 1e-12);
}

TEST(MemoryHarness, UhopMatchesAHandComputationAndIteratesSteps) {
  const auto X = tiny_memories();
  const auto z = at::tensor({0.9, 0.0, 0.0, 0.0}, at::kDouble).view({1, 4});
  SeparationParams params;
  params.beta = 2.0;
  const auto logits = at::matmul(z, X.t()) * 2.0;  // [1.62, 0, 0.9]
  const auto p1 = at::exp(logits) / (1 + at::exp(logits).sum());
  EXPECT_LE(max_abs_diff(retrieve_uhop(X, z, Separation::kSoftmax1, params, 1), at::matmul(p1, X)), 1e-12);
  const auto once = retrieve_uhop(X, z, Separation::kSoftmax1, params, 1);
  EXPECT_LE(max_abs_diff(retrieve_uhop(X, z, Separation::kSoftmax1, params, 2),
                         retrieve_uhop(X, once, Separation::kSoftmax1, params, 1)),
            1e-12);
  // Without renormalisation softmax_1 abstains a little: it differs from softmax.
  EXPECT_GT(max_abs_diff(once, retrieve_uhop(X, z, Separation::kSoftmax, params, 1)), 1e-3);
}

// softmax_1 = softmax * S / (1 + S) with S = sum exp: a positive factor per query, which the UHN harness's
// renormalisation p / sum p removes. So the one-shot, renormalised, cosine-judged protocol cannot tell them apart.
TEST(MemoryHarness, UhnCannotTellSoftmax1FromSoftmax) {
  at::manual_seed(0);
  const auto X = at::rand({50, 30}, at::kDouble), Z = at::rand({20, 30}, at::kDouble);
  for (const double beta : {1.0, 10.0, 1000.0}) {
    SeparationParams params;
    params.beta = beta;
    EXPECT_LE(max_abs_diff(retrieve_uhn(X, Z, Separation::kSoftmax, params),
                           retrieve_uhn(X, Z, Separation::kSoftmax1, params)),
              1e-12)
        << beta;
  }
}

TEST(MemoryExperiment, SeedsRepeatAndOptionsAreChecked) {
  if (!std::filesystem::exists(kFashionMnistTrain)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  MemoryExperimentConfig c;
  c.experiment = "noise";
  c.sizes = {40};
  c.sigmas = {0.3};
  c.models = {"softmax", "poly10"};
  c.seeds = {1, 2};
  c = with_defaults(c, false);
  const auto a = run_memory_experiment(c), b = run_memory_experiment(c);
  ASSERT_EQ(a.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].success_rate, b[i].success_rate);
    EXPECT_EQ(a[i].mean_sqdiff, b[i].mean_sqdiff);
  }
  EXPECT_NE(a[0].mean_sqdiff, a[2].mean_sqdiff);  // seed 1 vs seed 2: other images, other noise
  // Retrieval curves continue from the previous step count: the 3-step point equals a direct 3-step run.
  auto curve = c;
  curve.harness = Harness::kUhop;
  curve.steps = {3, 1};
  curve = with_defaults(curve, false);
  auto direct = curve;
  direct.steps = {3};
  const auto from_curve = run_memory_experiment(curve), from_direct = run_memory_experiment(direct);
  ASSERT_EQ(from_curve.size(), 2 * from_direct.size());
  EXPECT_EQ(from_curve[1].steps, 3);
  EXPECT_NEAR(from_curve[1].mean_sqdiff, from_direct[0].mean_sqdiff, 1e-9);
  EXPECT_THROW(with_defaults([&] { auto u = c; u.steps = {2}; return u; }(), false), c10::Error);  // uhn is one shot
  // Energy trace on real images: softmax and softmax_1 updates never raise the Hopfield energy (Lemma 2.1).
  auto trace = curve;
  trace.models = {"softmax", "softmax1", "sparsemax"};
  trace.steps = {1, 2, 3, 5};
  trace.params.beta = 0.05;
  for (const auto& model : trace.models) {
    double previous = INFINITY;
    for (const auto& r : run_memory_experiment(trace))
      if (r.model == model && r.seed == 1) {
        if (model == "sparsemax") {
          EXPECT_TRUE(std::isnan(r.mean_energy));
          continue;
        }
        EXPECT_LE(r.mean_energy, previous + 1e-6) << model << " step " << r.steps;
        previous = r.mean_energy;
      }
  }
  // No-op classification: a threshold above every similarity would flag all (an error); a moderate one flags some
  // memories, which then leave the retrieval matrix.
  auto no_op = c;
  no_op.no_op_threshold = 1.0;
  EXPECT_THROW(run_memory_experiment(no_op), c10::Error);
  no_op.no_op_threshold = 0.75;
  const auto flagged = run_memory_experiment(no_op);
  EXPECT_GT(flagged[0].flagged, 0);
  EXPECT_LT(flagged[0].flagged, 40);
  EXPECT_NE(flagged[0].mean_sqdiff, a[0].mean_sqdiff);
  EXPECT_EQ(a[0].flagged, 0);
  auto too_big = c;
  too_big.sizes = {20000};
  EXPECT_THROW(run_memory_experiment(too_big), c10::Error);
  auto no_dir = c;
  no_dir.dataset = "mnist";
  no_dir.data_dir = "/nonexistent";
  EXPECT_ANY_THROW(run_memory_experiment(no_dir));
  auto bad = c;
  bad.models = {"softmax3"};
  EXPECT_THROW(with_defaults(bad, false), c10::Error);
  EXPECT_THROW(parse_harness("uhx"), c10::Error);
}

}  // namespace
}  // namespace outeffhop::memory
