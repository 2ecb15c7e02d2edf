// Readers behind the Fox / Elephant / Tiger benchmarks: zip entries, MAT v5 objects, bags by the presence rule.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "outeffhop/data.h"
#include "outeffhop/mil.h"
#include "test_util.h"

namespace outeffhop::data {
namespace {

using namespace outeffhop::testing;

TEST(MilBenchmarks, ReadsTheAndrewsBenchmarksFromTheZip) {
  const auto dir = shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "../shared/data is absent";
  // Sizes of Andrews et al.'s benchmarks: 200 bags each, half positive, 230 features.
  for (const auto& [name, instances] : {std::pair{"fox", 1320}, std::pair{"elephant", 1391}, std::pair{"tiger", 1220}}) {
    const auto b = read_mil_benchmark(dir, name);
    EXPECT_EQ(b.instances.sizes(), at::IntArrayRef({instances, 230})) << name;
    EXPECT_TRUE(b.instances.isfinite().all().item<bool>()) << name;
    const auto bags = mil::bags_from_instances(b.instances, b.bag, b.positive);
    EXPECT_EQ(bags.labels.size(0), 200) << name;
    EXPECT_EQ(bags.labels.sum().item<double>(), 100.0) << name;
    EXPECT_EQ(bags.padding.logical_not().sum().item<int64_t>(), instances) << name;  // every instance in one bag
  }
  const auto fox = read_mil_benchmark(dir, "fox");
  // MATLAB stores column-major: the first row of data must be the first instance (these values from the file).
  EXPECT_NEAR(fox.instances[0][0].item<double>(), -1.31375, 1e-5);
  EXPECT_THROW(read_mil_benchmark(dir, "lion"), std::runtime_error);
  EXPECT_THROW(read_zip_entry(dir + "/mil/fox_elephant_tiger_mat.zip", "lion.mat"), std::runtime_error);
}

TEST(MilBenchmarks, RejectsWhatIsNotAMatFile) {
  EXPECT_THROW(read_mat5(std::vector<uint8_t>(200, 0), "zeros"), std::runtime_error);
  EXPECT_THROW(read_zip_entry("/nonexistent.zip", "x"), std::runtime_error);
  EXPECT_THROW(read_mil_benchmark("", "fox"), std::runtime_error);
}

TEST(MilBenchmarks, BagsFollowThePresenceRule) {
  const auto features = at::arange(6, at::kFloat).unsqueeze(1);
  const auto bag = at::tensor({2, 0, 2, 1, 0, 2}, at::kLong);
  const auto positive = at::tensor({0, 0, 1, 0, 0, 0}, at::kLong).to(at::kBool);
  const auto bags = mil::bags_from_instances(features, bag, positive);
  EXPECT_TRUE(bags.labels.equal(at::tensor({0.0f, 0.0f, 1.0f})));
  EXPECT_TRUE(bags.instances[2].squeeze(1).equal(at::tensor({0.0f, 2.0f, 5.0f})));
  EXPECT_TRUE(bags.padding[1].equal(at::tensor({0, 1, 1}, at::kLong).to(at::kBool)));
}

}  // namespace
}  // namespace outeffhop::data
