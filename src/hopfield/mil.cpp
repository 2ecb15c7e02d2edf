// Multiple-instance learning with HopfieldPooling, k-fold cross-validated (see mil.h).
#include "outeffhop/mil.h"

#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <sstream>

#include "outeffhop/nn/hopfield.h"

namespace outeffhop::mil {
namespace {

// Instance embedding, Hopfield pooling over the bag, linear read-out: bag logits.
class MilNetImpl : public torch::nn::Module {
 public:
  MilNetImpl(int64_t in, int64_t embedding, const std::string& association) {
    embed_ = register_module("embed", torch::nn::Linear(in, embedding));
    nn::HopfieldOptions o;
    o.input_size = embedding, o.hidden_size = 32, o.num_heads = 1, o.association = association;
    pooling_ = register_module("pooling", nn::HopfieldPooling(o));
    head_ = register_module("head", torch::nn::Linear(embedding, 1));
  }
  at::Tensor forward(const at::Tensor& instances, const at::Tensor& padding) {
    return head_->forward(pooling_->forward(at::relu(embed_->forward(instances)), padding)).squeeze(-1);
  }

 private:
  torch::nn::Linear embed_{nullptr}, head_{nullptr};
  nn::HopfieldPooling pooling_{nullptr};
};
TORCH_MODULE(MilNet);

}  // namespace

Bags make_bags(const at::Tensor& features, const at::Tensor& labels, int64_t target, int64_t bags, double mean_size,
               double size_std, uint64_t seed) {
  TORCH_CHECK(features.dim() == 2 && labels.dim() == 1 && features.size(0) == labels.size(0),
              "make_bags: features must be N x d and labels N");
  TORCH_CHECK(bags >= 2 && mean_size >= 2 && size_std >= 0, "make_bags: need bags >= 2, mean_size >= 2, std >= 0");
  at::manual_seed(seed);
  const auto targets = at::nonzero(labels == target).squeeze(1), others = at::nonzero(labels != target).squeeze(1);
  TORCH_CHECK(targets.numel() > 0 && others.numel() > 0, "make_bags: need images with and without the target ", target);
  std::vector<at::Tensor> chosen;
  std::vector<int64_t> sizes;
  for (int64_t b = 0; b < bags; ++b) {
    const int64_t size = std::max<int64_t>(2, std::llround(mean_size + size_std * at::randn({1}).item<double>()));
    auto idx = others.index_select(0, at::randint(others.numel(), {size}));
    if (b % 2 == 1) {  // positive: replace a random number (>= 1) of instances by target images
      const int64_t k = 1 + at::randint(std::max<int64_t>(1, size / 3), {1}).item<int64_t>();
      idx.narrow(0, 0, k).copy_(targets.index_select(0, at::randint(targets.numel(), {k})));
      idx = idx.index_select(0, at::randperm(size));
    }
    chosen.push_back(idx);
    sizes.push_back(size);
  }
  const int64_t max_size = *std::max_element(sizes.begin(), sizes.end());
  Bags out{at::zeros({bags, max_size, features.size(1)}, features.options()),
           at::ones({bags, max_size}, at::kBool), (at::arange(bags) % 2).to(at::kFloat)};
  for (int64_t b = 0; b < bags; ++b) {
    out.instances[b].narrow(0, 0, sizes[b]).copy_(features.index_select(0, chosen[b]));
    out.padding[b].narrow(0, 0, sizes[b]).fill_(false);
  }
  return out;
}

Bags bags_from_instances(const at::Tensor& features, const at::Tensor& bag_ids, const at::Tensor& positive) {
  TORCH_CHECK(features.dim() == 2 && bag_ids.dim() == 1 && positive.dim() == 1 &&
                  bag_ids.size(0) == features.size(0) && positive.size(0) == features.size(0),
              "bags_from_instances: need N x d features and N bag ids and labels");
  const auto ids = std::get<0>(at::_unique(bag_ids, /*sorted=*/true));
  std::vector<at::Tensor> members;
  int64_t max_size = 0;
  for (int64_t b = 0; b < ids.numel(); ++b) {
    members.push_back(at::nonzero(bag_ids == ids[b]).squeeze(1));
    max_size = std::max(max_size, members.back().numel());
  }
  Bags out{at::zeros({ids.numel(), max_size, features.size(1)}, features.options()),
           at::ones({ids.numel(), max_size}, at::kBool), at::zeros({ids.numel()}, at::kFloat)};
  for (int64_t b = 0; b < ids.numel(); ++b) {
    const int64_t size = members[b].numel();
    out.instances[b].narrow(0, 0, size).copy_(features.index_select(0, members[b]));
    out.padding[b].narrow(0, 0, size).fill_(false);
    out.labels[b] = positive.index_select(0, members[b]).any().item<bool>() ? 1.0 : 0.0;
  }
  return out;
}

double roc_auc(const at::Tensor& scores, const at::Tensor& labels) {
  const auto s = scores.to(at::kDouble), y = labels.to(at::kBool);
  const auto pos = s.masked_select(y), neg = s.masked_select(y.logical_not());
  TORCH_CHECK(pos.numel() > 0 && neg.numel() > 0, "roc_auc: need both classes");
  const auto greater = (pos.unsqueeze(1) > neg.unsqueeze(0)).to(at::kDouble);
  const auto ties = (pos.unsqueeze(1) == neg.unsqueeze(0)).to(at::kDouble);
  return (greater.sum() + 0.5 * ties.sum()).item<double>() / static_cast<double>(pos.numel() * neg.numel());
}

std::vector<MilRow> cross_validate(const Bags& bags, const MilConfig& c,
                                   const std::function<void(const std::string&)>& progress) {
  const int64_t n = bags.labels.size(0);
  TORCH_CHECK(c.folds >= 2 && c.folds <= n, "MIL: folds must be in 2..", n, ", got ", c.folds);
  TORCH_CHECK(c.epochs >= 1 && c.batch >= 1 && c.learning_rate > 0, "MIL: need epochs, batch >= 1 and a positive lr");
  at::manual_seed(c.seed);
  const auto fold_of = at::randperm(n) % c.folds;  // balanced fold assignment
  std::vector<MilRow> rows;
  for (const auto& model : c.models) {
    for (int64_t fold = 0; fold < c.folds; ++fold) {
      const auto test = at::nonzero(fold_of == fold).squeeze(1), train = at::nonzero(fold_of != fold).squeeze(1);
      at::manual_seed(c.seed * 7919 + fold);
      MilNet net(bags.instances.size(2), c.embedding, model);
      torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(c.learning_rate));
      for (int64_t epoch = 0; epoch < c.epochs; ++epoch) {
        const auto order = train.index_select(0, at::randperm(train.numel()));
        for (int64_t i = 0; i < order.numel(); i += c.batch) {
          const auto idx = order.narrow(0, i, std::min(c.batch, order.numel() - i));
          const auto logits = net->forward(bags.instances.index_select(0, idx), bags.padding.index_select(0, idx));
          const auto loss = at::binary_cross_entropy_with_logits(logits, bags.labels.index_select(0, idx));
          opt.zero_grad();
          loss.backward();
          opt.step();
        }
      }
      net->eval();
      torch::NoGradGuard no_grad;
      const auto scores = net->forward(bags.instances.index_select(0, test), bags.padding.index_select(0, test));
      const auto y = bags.labels.index_select(0, test);
      MilRow row{model, fold, ((scores > 0).to(at::kFloat) == y).to(at::kDouble).mean().item<double>(), 0.0};
      row.auc = (y.sum().item<double>() > 0 && y.sum().item<double>() < y.numel()) ? roc_auc(scores, y) : NAN;
      rows.push_back(row);
      if (progress) {
        std::ostringstream line;
        line << model << " fold " << fold + 1 << "/" << c.folds << ": accuracy " << row.accuracy << ", AUC " << row.auc;
        progress(line.str());
      }
    }
  }
  return rows;
}

}  // namespace outeffhop::mil
