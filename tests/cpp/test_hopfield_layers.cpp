// Hopfield, HopfieldPooling, HopfieldLayer: every association changes the computation, add_zero_association is
// softmax_1, beta per head acts on its own block, MemoryRetrieval equals hopfield_retrieve, the stop rules, masks,
// gradients, and a bit-pattern multiple-instance task learned with HopfieldPooling.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include "outeffhop/hopfield.h"
#include "outeffhop/nn/hopfield.h"
#include "test_util.h"

namespace outeffhop::nn {
namespace {

using namespace outeffhop::testing;

const std::vector<std::string> kAssociations = {"softmax",  "softmax1",     "softmax_n(3)", "sparsemax",
                                                "entmax15", "entmax_alpha", "poly_n(3)"};

HopfieldOptions small_options(const std::string& association) {
  HopfieldOptions o;
  o.input_size = 8, o.num_heads = 2, o.association = association;
  return o;
}

Hopfield make(HopfieldOptions o) {
  torch::manual_seed(3);  // same projection weights for every association
  Hopfield h(std::move(o));
  h->eval();
  return h;
}

struct Data {
  at::Tensor stored, state;
};

Data data() {
  torch::manual_seed(9);
  return {torch::randn({2, 6, 8}), torch::randn({2, 3, 8})};
}

TEST(HopfieldLayers, EveryAssociationChangesTheOutput) {
  const auto d = data();
  std::vector<at::Tensor> outs;
  for (const auto& a : kAssociations) {
    auto o = small_options(a);
    o.scaling = {2.0};  // sharper logits so that the sparse maps leave dense ones clearly
    auto h = make(o);
    if (a == "entmax_alpha") {  // alpha = 1.5 at start would equal entmax15: move it
      torch::NoGradGuard no_grad;
      h->named_parameters()["association_alpha_logit"].fill_(2.0);
    }
    outs.push_back(h->forward(d.stored, d.state, d.stored));
  }
  for (size_t a = 0; a < outs.size(); ++a)
    for (size_t b = a + 1; b < outs.size(); ++b)
      EXPECT_GT(max_abs_diff(outs[a], outs[b]), 1e-4) << kAssociations[a] << " vs " << kAssociations[b];
}

TEST(HopfieldLayers, EntmaxAlphaStartsAtEntmax15) {
  const auto d = data();
  EXPECT_LE(max_abs_diff(make(small_options("entmax_alpha"))->forward(d.stored, d.state, d.stored),
                         make(small_options("entmax15"))->forward(d.stored, d.state, d.stored)),
            1e-5);
}

TEST(HopfieldLayers, AddZeroAssociationWithSoftmaxIsSoftmax1) {
  const auto d = data();
  for (const int64_t steps : {0, 2}) {
    auto zero = small_options("softmax");
    zero.add_zero_association = true;
    zero.update_steps_max = steps;
    auto one = small_options("softmax1");
    one.update_steps_max = steps;
    const auto padding = torch::rand({2, 6}) > 0.7;
    EXPECT_LE(max_abs_diff(make(zero)->forward(d.stored, d.state, d.stored, padding),
                           make(one)->forward(d.stored, d.state, d.stored, padding)),
              kTolF32)
        << "steps " << steps;
  }
}

TEST(HopfieldLayers, PerHeadScalingActsOnEachHeadsBlock) {
  const auto d = data();
  auto both = small_options("softmax");
  both.scaling = {0.5, 3.0};
  const auto p = make(both)->association_matrix(d.stored, d.state, d.stored);
  for (int64_t h = 0; h < 2; ++h) {
    auto single = small_options("softmax");
    single.scaling = {h == 0 ? 0.5 : 3.0};
    const auto ph = make(single)->association_matrix(d.stored, d.state, d.stored).select(1, h);
    EXPECT_LE(max_abs_diff(p.select(1, h), ph), kTolF32) << "head " << h;
  }
}

TEST(HopfieldLayers, MemoryRetrievalModeEqualsHopfieldRetrieve) {
  torch::manual_seed(4);
  const auto memories = torch::randn({20, 16}, torch::kDouble);
  const auto queries = memories.narrow(0, 0, 5) + 0.3 * torch::randn({5, 16}, torch::kDouble);
  for (const int64_t steps : {0, 1, 4}) {
    Hopfield h(options_for_mode(parse_hopfield_mode("MemoryRetrieval"), [&] {
      HopfieldOptions o;
      o.input_size = 16, o.scaling = {3.0}, o.update_steps_max = steps, o.update_steps_eps = 0.0;
      return o;
    }()));
    h->to(torch::kDouble);
    EXPECT_TRUE(h->parameters().empty());  // no learning in this mode
    const auto out = h->forward(memories.unsqueeze(0), queries.unsqueeze(0), memories.unsqueeze(0)).squeeze(0);
    const auto expected = outeffhop::hopfield_retrieve(queries, memories, 3.0, 1.0, steps + 1).state;
    EXPECT_LE(max_abs_diff(out, expected), 1e-10) << "steps " << steps;
  }
}

TEST(HopfieldLayers, UpdatesUntilEpsReachAFixedPointUnderBothStopRules) {
  torch::manual_seed(6);
  const auto memories = torch::randn({1, 12, 10}, torch::kDouble);
  const auto queries = memories.narrow(1, 0, 4) + 0.5 * torch::randn({1, 4, 10}, torch::kDouble);
  for (const auto rule : {StopRule::kState, StopRule::kAssociation}) {
    auto o = memory_retrieval_options(10, 2.0, -1, 1e-9);
    o.stop_rule = rule;
    Hopfield h(o);
    h->to(torch::kDouble);
    const auto out = h->forward(memories, queries, memories);
    EXPECT_GT(h->last_update_steps().max().item<int64_t>(), 1);
    EXPECT_LT(h->last_update_steps().max().item<int64_t>(), kMaxUpdateSteps);
    // The output is one more update of the converged state: a fixed point of the retrieval map.
    const auto again = outeffhop::hopfield_retrieve(out.squeeze(0), memories.squeeze(0), 2.0, 1.0, 1).state;
    EXPECT_LE(max_abs_diff(again, out.squeeze(0)), 1e-6);
  }
}

TEST(HopfieldLayers, PaddedStoredPatternsAreIgnored) {
  const auto d = data();
  auto padding = torch::zeros({2, 6}, torch::kBool);
  padding.index_put_({0, torch::indexing::Slice(4, 6)}, true);
  for (const auto& a : kAssociations) {
    auto h = make(small_options(a));
    auto changed = d.stored.clone();
    changed.index_put_({0, torch::indexing::Slice(4, 6)}, 50.0);
    EXPECT_LE(max_abs_diff(h->forward(changed, d.state, changed, padding).select(0, 0),
                           h->forward(d.stored, d.state, d.stored, padding).select(0, 0)),
              1e-6)
        << a;
  }
}

TEST(HopfieldLayers, ShapesOfPoolingLayerAndMatrices) {
  auto o = small_options("softmax1");
  o.output_size = 5;
  HopfieldPooling pooling(o, /*quantity=*/3);
  const auto bags = torch::randn({4, 7, 8});
  EXPECT_EQ(pooling->forward(bags).sizes(), at::IntArrayRef({4, 15}));
  EXPECT_EQ(pooling->association_matrix(bags).sizes(), at::IntArrayRef({4, 2, 3, 7}));
  HopfieldLayer layer(o, /*quantity=*/10);
  EXPECT_EQ(layer->forward(torch::randn({4, 6, 8})).sizes(), at::IntArrayRef({4, 6, 5}));
  EXPECT_EQ(layer->association_matrix(torch::randn({4, 6, 8})).sizes(), at::IntArrayRef({4, 2, 6, 10}));
  auto h = make(o);
  const auto d = data();
  EXPECT_EQ(h->projected_pattern_matrix(d.stored, d.state, d.stored).sizes(), at::IntArrayRef({2, 2, 6, 4}));
  auto seq_first = o;
  seq_first.batch_first = false;
  EXPECT_EQ(Hopfield(seq_first)->forward(torch::randn({6, 2, 8})).sizes(), at::IntArrayRef({6, 2, 5}));
}

TEST(HopfieldLayers, EveryParameterLearnsUnderEveryAssociation) {
  const auto d = data();
  for (const auto& a : kAssociations) {
    auto h = make(small_options(a));
    h->train();
    h->forward(d.stored, d.state, d.stored).pow(2).sum().backward();
    for (const auto& p : h->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << a << " " << p.key();
      EXPECT_TRUE(p.value().grad().isfinite().all().item<bool>()) << a << " " << p.key();
    }
  }
}

TEST(HopfieldLayers, BadOptionsAreRejectedClearly) {
  EXPECT_THROW(Hopfield(small_options("softmax2")), c10::Error);
  auto o = small_options("softmax");
  o.state_pattern_as_static = true;
  o.hidden_size = 3;  // 2 heads x 3 != 8 input features
  EXPECT_THROW(Hopfield{o}, c10::Error);
  auto s = small_options("softmax");
  s.scaling = {1.0, 2.0, 3.0};
  EXPECT_THROW(Hopfield{s}, c10::Error);
  EXPECT_THROW(parse_hopfield_mode("OutEff"), c10::Error);
  auto h = make(small_options("softmax"));
  EXPECT_THROW(h->forward(torch::randn({2, 6, 7})), c10::Error);
}

// hopfield-layers' bit-pattern example, as a multiple-instance task: a bag of 8-bit patterns (as +-1) is positive
// when it contains the signal pattern. HopfieldPooling learns a query that finds it.
TEST(HopfieldLayers, PoolingSolvesBitPatternMultipleInstanceTask) {
  torch::manual_seed(0);
  const int64_t bags = 1200, bag_size = 8, bits = 8;
  auto x = torch::randint(0, 2, {bags, bag_size, bits}).to(torch::kFloat) * 2 - 1;
  const auto signal = torch::randint(0, 2, {bits}).to(torch::kFloat) * 2 - 1;
  // Remove accidental copies of the signal, then plant it into half the bags.
  const auto accidental = (x == signal).all(-1, true);
  x = at::where(accidental, -signal, x);
  const auto labels = (torch::arange(bags) % 2).to(torch::kFloat);
  const auto where = torch::randint(0, bag_size, {bags});
  for (int64_t b = 0; b < bags; b += 2) x[b + 1][where[b + 1].item<int64_t>()] = signal;
  const int64_t train = 1000;
  for (const auto& association : {"softmax", "softmax1"}) {
    torch::manual_seed(1);
    HopfieldOptions o;
    o.input_size = bits, o.hidden_size = 8, o.num_heads = 1, o.association = association, o.output_size = 8;
    HopfieldPooling pooling(o);
    torch::nn::Linear head(8, 1);
    std::vector<at::Tensor> params = pooling->parameters();
    for (const auto& p : head->parameters()) params.push_back(p);
    torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-2));
    for (int epoch = 0; epoch < 30; ++epoch) {
      for (int64_t i = 0; i < train; i += 100) {
        const auto logits = head->forward(pooling->forward(x.narrow(0, i, 100))).squeeze(-1);
        const auto loss = at::binary_cross_entropy_with_logits(logits, labels.narrow(0, i, 100));
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
    }
    torch::NoGradGuard no_grad;
    pooling->eval();
    const auto test_logits = head->forward(pooling->forward(x.narrow(0, train, bags - train))).squeeze(-1);
    const double accuracy =
        ((test_logits > 0).to(torch::kFloat) == labels.narrow(0, train, bags - train)).to(torch::kFloat).mean().item<double>();
    EXPECT_GE(accuracy, 0.95) << association;
  }
}

}  // namespace
}  // namespace outeffhop::nn
