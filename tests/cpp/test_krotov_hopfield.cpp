// The binary dense associative memory: energy never rises under the asynchronous updates, stored patterns are fixed
// points, corrupted patterns are recovered, bad input is rejected.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "outeffhop/krotov_hopfield.h"

namespace outeffhop {
namespace {

at::Tensor random_binary(int64_t rows, int64_t d) { return at::randint(0, 2, {rows, d}).to(at::kFloat) * 2 - 1; }

TEST(KrotovHopfield, EnergyNeverRisesAndPatternsAreRecovered) {
  at::manual_seed(0);
  const auto patterns = random_binary(60, 64);  // far beyond the ~0.14 d capacity of the classical (n = 2) model
  auto queries = patterns.clone();
  const auto flips = at::rand({60, 64}) < 0.1;
  queries = at::where(flips, -queries, queries);
  auto previous = krotov_hopfield_energy(patterns, queries);
  auto state = queries;
  for (int sweep = 0; sweep < 4; ++sweep) {  // one sweep at a time: the energy is checked after each
    state = krotov_hopfield_retrieve(patterns, state, 10, 1).state;
    const auto energy = krotov_hopfield_energy(patterns, state);
    EXPECT_TRUE((energy <= previous + 1e-12).all().item<bool>()) << "sweep " << sweep;
    previous = energy;
  }
  EXPECT_TRUE(at::equal(state, patterns));  // every corrupted pattern recovered exactly
  const auto fixed = krotov_hopfield_retrieve(patterns, patterns, 10, 3);
  EXPECT_TRUE(at::equal(fixed.state, patterns));
  EXPECT_EQ(fixed.sweeps.max().item<int64_t>(), 1);  // one sweep with no change, then stop
}

TEST(KrotovHopfield, HigherPowerStoresMore) {
  at::manual_seed(1);
  const auto patterns = random_binary(40, 32);  // 40 patterns in 32 dims: too many for n = 2, fine for n = 10
  auto queries = at::where(at::rand({40, 32}) < 0.05, -patterns, patterns);
  auto exact = [&](int64_t n) {
    return krotov_hopfield_retrieve(patterns, queries, n, 10).state.eq(patterns).all(1).to(at::kFloat).mean().item<double>();
  };
  EXPECT_LT(exact(2), 0.5);
  EXPECT_GT(exact(10), 0.95);
}

TEST(KrotovHopfield, RejectsNonBinaryInput) {
  EXPECT_THROW(krotov_hopfield_retrieve(at::rand({3, 4}), random_binary(2, 4)), c10::Error);
  EXPECT_THROW(krotov_hopfield_retrieve(random_binary(3, 4), random_binary(2, 5)), c10::Error);
  EXPECT_THROW(krotov_hopfield_retrieve(random_binary(3, 4), random_binary(2, 4), 1), c10::Error);
}

}  // namespace
}  // namespace outeffhop
