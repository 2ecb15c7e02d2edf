// The outlier-efficient modern Hopfield model: energy, retrieval, the paper's Lemma 2.1, Theorem 3.1 and
// Corollary 3.2.1 as properties, and the no-op classification.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "outeffhop/data.h"
#include "outeffhop/hopfield.h"
#include "outeffhop/softmax.h"
#include "test_util.h"

namespace outeffhop {
namespace {

using namespace outeffhop::testing;

at::Tensor unit_rows(const at::Tensor& t) { return t / t.norm(2, -1, true); }

TEST(HopfieldEnergy, MatchesReferenceIncludingLargeBeta) {
  at::manual_seed(1);
  const auto x = at::randn({6, 10}, at::kDouble);
  const auto mem = at::randn({9, 10}, at::kDouble);
  for (const double beta : {0.1, 1.0, 1e3}) {  // beta xi.x up to ~1e4: exp would overflow without the shift
    for (const double n : {0.0, 1.0, 3.0}) {
      const auto e = hopfield_energy(x, mem, beta, n);
      EXPECT_TRUE(e.isfinite().all().item<bool>());
      EXPECT_LE(max_abs_diff(e, reference::hopfield_energy(x, mem, beta, n)), 1e-9 * (1 + beta))
          << "beta=" << beta << " n=" << n;
    }
  }
  // Far from every memory, lse_1 -> log(1)/beta = 0, so H -> |x|^2/2 (the zero-energy point of Remark 2.2).
  const auto positive = unit_rows(mem.abs());  // every memory in the positive orthant ...
  const auto far = at::full({1, 10}, -100.0 / std::sqrt(10.0), at::kDouble);  // ... and x opposite to all of them
  const auto e_far = hopfield_energy(far, positive, 1.0, 1.0);
  EXPECT_NEAR(e_far.item<double>(), 0.5 * (far * far).sum().item<double>(), 1e-12);
}

TEST(HopfieldEnergy, GradientIsStateMinusUpdate) {
  // dH/dx = x - Xi softmax_n(beta Xi^T x) = x - T(x): stationary points of H are exactly fixed points of T.
  const auto x = at::randn({4, 7}, at::kDouble);
  const auto mem = at::randn({5, 7}, at::kDouble);
  for (const double n : {0.0, 1.0}) {
    const auto g = autograd_grad([&](const at::Tensor& t) { return hopfield_energy(t, mem, 0.7, n).sum(); }, x);
    EXPECT_LE(max_abs_diff(g, x - reference::hopfield_update(x, mem, 0.7, n)), kTolF64 * 10);
    auto f = [&](const at::Tensor& t) { return hopfield_energy(t, mem, 0.7, n).sum(); };
    EXPECT_LE(max_abs_diff(g, numeric_grad(f, x)), kTolFiniteDiff);
  }
}

TEST(HopfieldRetrieve, StepsMatchIteratedReferenceUpdate) {
  const auto x = at::randn({5, 8}, at::kDouble);
  const auto mem = at::randn({12, 8}, at::kDouble);
  for (const double n : {0.0, 1.0, 2.0}) {
    auto ref = x;
    for (int64_t k = 1; k <= 4; ++k) {
      ref = reference::hopfield_update(ref, mem, 0.5, n);
      const auto r = hopfield_retrieve(x, mem, 0.5, n, k, 0.0);
      EXPECT_LE(max_abs_diff(r.state, ref), kTolF64 * 10) << "n=" << n << " steps=" << k;
      EXPECT_TRUE(at::equal(r.steps, at::full({5}, k, at::kLong)));
    }
  }
  const auto zero = hopfield_retrieve(x, mem, 0.5, 1.0, 0, 0.0);
  EXPECT_TRUE(at::equal(zero.state, x));
  EXPECT_EQ(zero.steps.sum().item<int64_t>(), 0);
}

TEST(HopfieldRetrieve, StopsPerQueryOnTheStateRule) {
  at::manual_seed(5);
  const auto mem = unit_rows(at::randn({6, 32}, at::kDouble));
  // Query 0 starts on a memory (converges at once with a large beta); query 1 is far from all.
  const auto x = at::stack({mem[2], 0.3 * unit_rows(at::randn({1, 32}, at::kDouble))[0]});
  const auto r = hopfield_retrieve(x, mem, 50.0, 1.0, 100, 1e-9);
  const auto steps = r.steps.accessor<int64_t, 1>();
  EXPECT_LT(steps[0], 100);
  EXPECT_GE(steps[0], 1);
  // Every stopped query is at a fixed point to within eps.
  const auto moved = (reference::hopfield_update(r.state, mem, 50.0, 1.0) - r.state).norm(2, -1);
  EXPECT_LE(moved[0].item<double>(), 1e-9);
  // A huge eps stops everything after exactly one update.
  const auto once = hopfield_retrieve(x, mem, 50.0, 1.0, 100, 1e9);
  EXPECT_TRUE(at::equal(once.steps, at::ones({2}, at::kLong)));
  EXPECT_LE(max_abs_diff(once.state, reference::hopfield_update(x, mem, 50.0, 1.0)), kTolF64);
}

// Lemma 2.1: the energy never increases along the retrieval dynamics.
void expect_monotone_descent(const at::Tensor& mem, const at::Tensor& x0, double beta, double n, int steps) {
  auto x = x0;
  auto e = reference::hopfield_energy(x, mem, beta, n);
  for (int t = 0; t < steps; ++t) {
    x = hopfield_retrieve(x, mem, beta, n, 1, 0.0).state;
    const auto next = reference::hopfield_energy(x, mem, beta, n);
    // float64 rounding only: CCCP guarantees descent exactly.
    const auto rise = (next - e).max().item<double>();
    ASSERT_LE(rise, 1e-10 * (1 + e.abs().max().item<double>())) << "step " << t << " beta " << beta << " n " << n;
    e = next;
  }
}

TEST(HopfieldProperties, Lemma21EnergyDescentOnRandomPatterns) {
  at::manual_seed(2);
  const auto mem = at::randn({40, 16}, at::kDouble);
  const auto x = at::randn({30, 16}, at::kDouble) * 2;
  for (const double beta : {0.05, 0.5, 4.0}) {
    for (const double n : {0.0, 1.0, 5.0}) expect_monotone_descent(mem, x, beta, n, 25);
  }
}

TEST(HopfieldProperties, Lemma21EnergyDescentOnRealImages) {
  if (!std::filesystem::exists(kFashionMnistTrain)) GTEST_SKIP() << "Fashion-MNIST (Debian) not installed";
  const auto images = data::read_idx(kFashionMnistTrain).narrow(0, 0, 300).to(at::kDouble).flatten(1) / 255.0;
  const auto mem = images.narrow(0, 0, 200);
  auto queries = images.narrow(0, 150, 100).clone();  // half stored, half unseen
  queries.narrow(1, 392, 392).zero_();                 // bottom half masked
  for (const double beta : {0.01, 0.1, 1.0}) {        // raw pixels: beta xi.x from ~1 to ~100
    for (const double n : {0.0, 1.0}) expect_monotone_descent(mem, queries, beta, n, 10);
  }
}

TEST(HopfieldProperties, Theorem31IteratesConvergeToStationaryPoints) {
  at::manual_seed(4);
  const auto mem = unit_rows(at::randn({20, 24}, at::kDouble));
  const auto x = mem.narrow(0, 0, 10) + 0.3 * at::randn({10, 24}, at::kDouble);
  for (const double n : {0.0, 1.0}) {
    const auto r = hopfield_retrieve(x, mem, 8.0, n, 2000, 1e-13);
    EXPECT_LT(r.steps.max().item<int64_t>(), 2000) << "did not converge, n=" << n;
    // A limit point x* is a fixed point of T and a stationary point of H (gradient x - T(x) = 0).
    const auto grad = autograd_grad([&](const at::Tensor& t) { return hopfield_energy(t, mem, 8.0, n).sum(); },
                                    r.state);
    EXPECT_LE(grad.abs().max().item<double>(), 1e-11) << "n=" << n;
  }
}

TEST(HopfieldProperties, Corollary321ExactConditionAndThePaperCondition) {
  // T_OutEff(x) = gamma T_original(x), so with |xi| = 1 the difference of squared errors is
  // (gamma - 1) [(gamma + 1) |T_orig|^2 - 2 |T_orig| cos(alpha)]: the improvement holds iff
  // (gamma + 1) |T_orig| / 2 >= cos(alpha). The paper's (gamma + 1)/2 >= cos(alpha) assumes |T_orig| = 1.
  at::manual_seed(6);
  int paper_condition_false_positive = 0, checked = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const auto mem = unit_rows(at::randn({8, 6}, at::kDouble));
    const auto x = unit_rows(at::randn({1, 6}, at::kDouble));
    const double beta = std::exp(at::randn({}, at::kDouble).item<double>() * 2);
    const auto t_orig = hopfield_retrieve(x, mem, beta, 0.0).state[0];
    const auto t_eff = hopfield_retrieve(x, mem, beta, 1.0).state[0];
    const double gamma = softmax_n(beta * at::matmul(x, mem.t()), 1.0).sum().item<double>();
    for (int64_t mu = 0; mu < mem.size(0); ++mu) {
      const auto xi = mem[mu];
      const double norm = t_orig.norm().item<double>();
      const double cos_a = (t_orig * xi).sum().item<double>() / norm;
      // Squared-error change; it is (gamma - 1) |T_orig| [(gamma + 1) |T_orig| - 2 cos(alpha)], tiny when gamma ~ 1.
      const double change = (t_eff - xi).pow(2).sum().item<double>() - (t_orig - xi).pow(2).sum().item<double>();
      const bool improves = change <= 0;
      const double exact_margin = (gamma + 1) * norm / 2 - cos_a;
      if (std::abs(change) > 1e-12 && std::abs(exact_margin) > 1e-9) {
        EXPECT_EQ(improves, exact_margin > 0) << "trial " << trial << " mu " << mu << " change " << change;
        ++checked;
      }
      paper_condition_false_positive += ((gamma + 1) / 2 >= cos_a) && !improves;
    }
  }
  EXPECT_GT(checked, 300);
  // The paper's condition alone is not sufficient: it admits cases where softmax_1 retrieves worse.
  EXPECT_GT(paper_condition_false_positive, 0);

  // A worked counterexample: xi_1 = e1, xi_2 = e2, x = (e1 + e2)/sqrt 2, beta = 1. T_orig = (1/2, 1/2),
  // cos(alpha) = 0.707, gamma = 0.803: (gamma + 1)/2 = 0.90 >= 0.707, yet T_OutEff is farther from xi_1.
  const auto mem = at::eye(2, at::kDouble);
  const auto x = at::full({1, 2}, 1 / std::sqrt(2.0), at::kDouble);
  const auto err_orig = (hopfield_retrieve(x, mem, 1.0, 0.0).state[0] - mem[0]).norm().item<double>();
  const auto err_eff = (hopfield_retrieve(x, mem, 1.0, 1.0).state[0] - mem[0]).norm().item<double>();
  EXPECT_GT(err_eff, err_orig);
}

// ---- No-op classification ----

// Clusters of near-identical unit patterns plus `outliers` random directions unlike any cluster.
struct Clustered {
  at::Tensor memories;
  at::Tensor is_outlier;
};
Clustered clustered_memories(int64_t clusters, int64_t per_cluster, int64_t outliers, int64_t d) {
  const auto centers = unit_rows(at::randn({clusters, d}, at::kDouble));
  // Members sit at cosine ~0.96 from their centre; independent random directions sit near cosine 0 in high d.
  const auto members = unit_rows(centers.repeat_interleave(per_cluster, 0) +
                                 0.3 * unit_rows(at::randn({clusters * per_cluster, d}, at::kDouble)));
  const auto odd = unit_rows(at::randn({outliers, d}, at::kDouble));
  Clustered c;
  c.memories = at::cat({members, odd});
  c.is_outlier = at::cat({at::zeros({clusters * per_cluster}, at::kBool), at::ones({outliers}, at::kBool)});
  return c;
}

TEST(NoOpClassification, SimilarityThresholdingFlagsTheDissimilarPatterns) {
  at::manual_seed(8);
  const auto c = clustered_memories(5, 6, 3, 128);
  EXPECT_TRUE(at::equal(flag_dissimilar(c.memories, 0.5), c.is_outlier));
  EXPECT_FALSE(flag_dissimilar(c.memories, -1.0).any().item<bool>());  // nothing is below -1
  EXPECT_THROW(flag_dissimilar(c.memories, 2.0), c10::Error);
}

TEST(NoOpClassification, OneStepEqualsVanillaRetrievalInTheExtendedSpace) {
  // Independent oracle: build x_bar = (x, 0), xi_bar = Lambda(xi) in d + 1 dims explicitly and run *softmax*
  // retrieval; its first d coordinates must equal our softmax_n retrieval over the kept memories.
  at::manual_seed(9);
  const auto c = clustered_memories(3, 4, 2, 16);
  const auto x = at::randn({5, 16}, at::kDouble);
  const auto x_bar = at::cat({x, at::zeros({5, 1}, at::kDouble)}, 1);
  const auto ops = c.memories.index({c.is_outlier.logical_not()});
  const auto op_bar = at::cat({ops, at::zeros({ops.size(0), 1}, at::kDouble)}, 1);
  const double beta = 1.7;
  for (const auto classes : {NoOpClassVectors::kShared, NoOpClassVectors::kDistinct}) {
    const auto classified = classify_no_op(c.memories, c.is_outlier, classes);
    // Shared: one Omega = (0, ..., 0, C). Distinct: Omega_k = (0, ..., 0, C_k) with distinct C_k.
    const int64_t omegas = classes == NoOpClassVectors::kShared ? 1 : 2;
    auto omega = at::zeros({omegas, 17}, at::kDouble);
    for (int64_t k = 0; k < omegas; ++k) omega[k][16] = 3.0 + k;
    const auto xi_bar = at::cat({op_bar, omega});
    const auto extended = reference::hopfield_update(x_bar, xi_bar, beta, 0.0).narrow(1, 0, 16);
    EXPECT_LE(max_abs_diff(retrieve(classified, x, beta).state, extended), kTolF64 * 10);
    EXPECT_LE(max_abs_diff(energy(classified, x, beta), reference::hopfield_energy(x_bar, xi_bar, beta, 0.0)),
              kTolF64 * 10);
    EXPECT_EQ(classified.memories.size(0), ops.size(0));
    EXPECT_EQ(classified.n, static_cast<double>(omegas));
  }
}

TEST(NoOpClassification, OutliersNoLongerHijackRetrieval) {
  // A large-norm outlier pattern with a little overlap with the query dominates softmax retrieval; once it is
  // classified as no-op, retrieval returns the stored pattern the query came from.
  at::manual_seed(10);
  auto c = clustered_memories(4, 3, 1, 64);
  auto mem = c.memories.clone();
  mem[12] = mem[12] * 20;  // the outlier, far larger than the unit patterns
  const auto target = mem[4];
  const auto query = unit_rows((target + 0.5 * unit_rows(at::randn({1, 64}, at::kDouble))[0]).unsqueeze(0)) +
                     0.25 * unit_rows(mem[12].unsqueeze(0));
  const double beta = 10.0;
  auto cosine = [&](const at::Tensor& a) { return (unit_rows(a) * target / target.norm()).sum().item<double>(); };
  const auto hijacked = hopfield_retrieve(query, mem, beta, 1.0, 3).state;
  const auto flagged = flag_dissimilar(mem, 0.5);
  ASSERT_TRUE(at::equal(flagged, c.is_outlier));
  const auto clean = retrieve(classify_no_op(mem, flagged), query, beta, 3).state;
  EXPECT_LT(cosine(hijacked), 0.5);
  EXPECT_GT(cosine(clean), 0.95);
}

TEST(NoOpClassification, RejectsBadFlags) {
  const auto mem = at::randn({4, 3}, at::kDouble);
  EXPECT_THROW(classify_no_op(mem, at::ones({3}, at::kBool)), c10::Error);
  EXPECT_THROW(classify_no_op(mem, at::ones({4}, at::kFloat)), c10::Error);
  EXPECT_THROW(classify_no_op(mem, at::ones({4}, at::kBool)), c10::Error);  // nothing left
}

TEST(HopfieldArguments, ClearErrors) {
  const auto x = at::randn({2, 3});
  const auto mem = at::randn({4, 3});
  EXPECT_THROW(hopfield_energy(x.view({6}), mem, 1.0), c10::Error);       // wrong rank
  EXPECT_THROW(hopfield_energy(x, at::randn({4, 5}), 1.0), c10::Error);   // mismatched d
  EXPECT_THROW(hopfield_energy(x, at::randn({0, 3}), 1.0), c10::Error);   // empty memories
  EXPECT_THROW(hopfield_energy(x, mem, 0.0), c10::Error);                  // beta
  EXPECT_THROW(hopfield_energy(x, mem, 1.0, -2.0), c10::Error);            // n
  EXPECT_THROW(hopfield_retrieve(x, mem, 1.0, 1.0, -1), c10::Error);       // max_steps
  EXPECT_THROW(hopfield_retrieve(x, mem, 1.0, 1.0, 1, -1.0), c10::Error);  // eps
  EXPECT_THROW(hopfield_retrieve(x, mem.to(at::kDouble), 1.0), c10::Error);  // dtype mix
  try {
    hopfield_retrieve(x, at::randn({4, 5}), 1.0);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("pattern dims differ"), std::string::npos);
  }
}

}  // namespace
}  // namespace outeffhop
