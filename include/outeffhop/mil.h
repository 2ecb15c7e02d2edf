// Multiple-instance learning with Hopfield pooling (paper §4 / hopfield-layers' MNIST-bags example): bags of images,
// positive when one instance is the target digit; an instance embedding, HopfieldPooling with a chosen association,
// and a linear classifier, evaluated by k-fold cross-validation (accuracy and ROC AUC per fold).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

namespace outeffhop::mil {

struct Bags {
  at::Tensor instances;  // bags x max_size x d (float, zero-padded)
  at::Tensor padding;    // bags x max_size bool, true = padding
  at::Tensor labels;     // bags float {0, 1}
};

// Bags drawn from labelled images (N x d features, N labels): sizes ~ round(N(mean_size, size_std)) clamped to >= 2,
// half the bags positive (exactly one or more instances of `target`), the other half without any. Seeded.
Bags make_bags(const at::Tensor& features, const at::Tensor& labels, int64_t target, int64_t bags, double mean_size,
               double size_std, uint64_t seed);

// Bags from instances grouped by bag id (N x d features, N bag ids, N instance labels): a bag is positive when any
// instance is (the "presence" rule). Bags are ordered by id; instances keep their order within a bag.
Bags bags_from_instances(const at::Tensor& features, const at::Tensor& bag_ids, const at::Tensor& positive);

struct MilConfig {
  std::vector<std::string> models = {"softmax", "softmax1", "sparsemax"};  // HopfieldPooling associations
  int64_t folds = 10;
  int64_t epochs = 30;
  double learning_rate = 1e-3;
  int64_t embedding = 64;  // instance embedding width
  int64_t batch = 16;      // bags per step
  uint64_t seed = 1;
};

struct MilRow {
  std::string model;
  int64_t fold = 0;
  double accuracy = 0;
  double auc = 0;
};

// Area under the ROC curve of scores for binary labels (ties count half).
double roc_auc(const at::Tensor& scores, const at::Tensor& labels);

std::vector<MilRow> cross_validate(const Bags& bags, const MilConfig& config,
                                   const std::function<void(const std::string&)>& progress = {});

}  // namespace outeffhop::mil
