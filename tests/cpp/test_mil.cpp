// Multiple-instance learning: bag construction, ROC AUC by hand, a learnable synthetic task, repeatability.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "outeffhop/mil.h"

namespace outeffhop::mil {
namespace {

TEST(Mil, BagsAreBalancedAndLabelledByTheTarget) {
  at::manual_seed(0);
  const auto labels = at::randint(0, 10, {500});
  const auto features = labels.to(at::kFloat).unsqueeze(1);  // the feature is the label: easy to check
  const auto bags = make_bags(features, labels, 9, 40, 6, 1.5, 3);
  EXPECT_EQ(bags.labels.sum().item<double>(), 20.0);
  for (int64_t b = 0; b < 40; ++b) {
    const auto kept = bags.instances[b].squeeze(1).masked_select(bags.padding[b].logical_not());
    EXPECT_GE(kept.numel(), 2);
    EXPECT_EQ(kept.eq(9).any().item<bool>(), bags.labels[b].item<double>() == 1.0) << b;
  }
  const auto again = make_bags(features, labels, 9, 40, 6, 1.5, 3);
  EXPECT_TRUE(at::equal(again.instances, bags.instances));
}

TEST(Mil, RocAucByHand) {
  // positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4) (0.9>0.1) (0.4=0.4 half) (0.4>0.1) -> 3.5 / 4.
  EXPECT_DOUBLE_EQ(roc_auc(at::tensor({0.9, 0.4, 0.4, 0.1}), at::tensor({1.0, 1.0, 0.0, 0.0})), 0.875);
  EXPECT_THROW(roc_auc(at::tensor({0.1, 0.2}), at::tensor({1.0, 1.0})), c10::Error);
}

TEST(Mil, LearnsAPlantedSignalRepeatably) {
  at::manual_seed(1);
  const auto labels = at::randint(0, 5, {600});
  const auto features = at::randn({600, 8}) * 0.3 + at::one_hot(labels, 8).to(at::kFloat) * 2;
  const auto bags = make_bags(features, labels, 3, 120, 6, 1, 2);
  MilConfig c;
  c.models = {"softmax1"};
  c.folds = 3, c.epochs = 15;
  const auto a = cross_validate(bags, c), b = cross_validate(bags, c);
  double accuracy = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].accuracy, b[i].accuracy);
    accuracy += a[i].accuracy / a.size();
  }
  EXPECT_GE(accuracy, 0.9);
}

}  // namespace
}  // namespace outeffhop::mil
