// STanHop-Net: shapes through every stage for odd lengths, padding by repeating the first step, every association
// changes the output, parameter and activation-point names, initialised memories, training lowers the loss.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adam.h>

#include <set>

#include "outeffhop/analysis/outlier_points.h"
#include "outeffhop/models/stanhop.h"
#include "test_util.h"

namespace outeffhop::models {
namespace {

using namespace outeffhop::testing;

StanhopConfig small(const std::string& variant = "softmax1") {
  StanhopConfig c;
  c.series = 3, c.in_len = 13, c.out_len = 7, c.seg_len = 4, c.win_size = 2, c.layers = 3, c.factor = 2;
  c.d_model = 8, c.num_heads = 2, c.d_ff = 16, c.dropout = 0.0;
  c.variant = nn::parse_attention_variant(variant);
  return c;
}

// Copies every parameter `from` shares by name and shape into `to`.
void copy_shared(StanhopNet& from, StanhopNet& to) {
  torch::NoGradGuard no_grad;
  auto source = from->named_parameters();
  for (auto& p : to->named_parameters())
    if (source.contains(p.key()) && source[p.key()].sizes() == p.value().sizes()) p.value().copy_(source[p.key()]);
}

TEST(StanhopNet, ShapesThroughEveryStageForOddLengths) {
  for (const auto& [in_len, seg_len, win, out_len] :
       std::vector<std::array<int64_t, 4>>{{13, 4, 2, 7}, {17, 3, 4, 5}, {12, 6, 1, 24}, {5, 6, 3, 1}}) {
    auto c = small();
    c.in_len = in_len, c.seg_len = seg_len, c.win_size = win, c.out_len = out_len;
    StanhopNet net(c);
    std::map<std::string, std::vector<int64_t>> shapes;
    auto points = std::make_shared<nn::ActivationPoints>();
    points->add_observer([&](const std::string& name, const at::Tensor& x) { shapes[name] = x.sizes().vec(); });
    net->set_activation_points(points);
    const auto y = net->forward(at::randn({2, in_len, 3}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, out_len, 3}));
    const int64_t segments = (in_len + seg_len - 1) / seg_len;
    EXPECT_EQ(shapes["pre_norm"], (std::vector<int64_t>{2, 3, segments, 8}));
    // Block i >= 1 merges win adjacent segments (the last ones repeated to fill a window).
    int64_t s = segments;
    for (int64_t i = 1; i < 3; ++i) {
      s = (s + win - 1) / win;
      const auto name = "encoder.encode_blocks." + std::to_string(i) + ".encode_layers.0.norm4";
      EXPECT_EQ(shapes[name], (std::vector<int64_t>{2 * s, 3, 8})) << name;  // (B * segments) x D x d
      EXPECT_EQ(shapes.count("encoder.encode_blocks." + std::to_string(i) + ".merge_layer.linear"), win > 1 ? 1u : 0u);
    }
    const int64_t out_segments = (out_len + seg_len - 1) / seg_len;
    EXPECT_EQ(shapes["decoder.decode_layers.3.linear_pred"], (std::vector<int64_t>{2 * 3, out_segments, seg_len}));
    EXPECT_EQ(shapes.count("decoder.decode_layers.4.linear_pred"), 0u);  // layers + 1 decoder layers
  }
}

TEST(StanhopNet, PadsByRepeatingTheFirstStep) {
  // in_len 13 with segments of 4 is padded to 16 with three copies of the first step: the same model built for
  // in_len 16 (identical parameter shapes) given that padded input by hand must agree.
  torch::manual_seed(0);
  StanhopNet short_net(small());
  auto c16 = small();
  c16.in_len = 16;
  StanhopNet long_net(c16);
  copy_shared(short_net, long_net);
  short_net->eval(), long_net->eval();
  const auto x = at::randn({2, 13, 3});
  const auto padded = at::cat({x.narrow(1, 0, 1).repeat({1, 3, 1}), x}, 1);
  EXPECT_LE(max_abs_diff(short_net->forward(x), long_net->forward(padded)), 1e-6);
  auto other = padded.clone();
  other.narrow(1, 0, 3).add_(1.0);  // a different pad must change the output: the pad is really used
  EXPECT_GT(max_abs_diff(long_net->forward(padded), long_net->forward(other)), 1e-4);
}

TEST(StanhopNet, EveryAssociationChangesTheOutput) {
  const std::vector<std::string> variants = {
      "softmax",  "softmax1",          "sparsemax",     "entmax_alpha",
      "entmax15", "clipped(-0.025,1)", "gated(linear)", "gated_softmax1(linear)"};
  torch::manual_seed(1);
  StanhopNet base(small("softmax"));
  const auto x = at::randn({2, 13, 3});
  std::vector<at::Tensor> outs;
  for (const auto& v : variants) {
    StanhopNet net(small(v));
    copy_shared(base, net);  // identical weights: only the association differs
    if (v == "entmax_alpha") {
      torch::NoGradGuard no_grad;
      for (auto& p : net->named_parameters())
        if (p.key().find("entmax_alpha_logit") != std::string::npos) p.value().fill_(1.0);  // alpha 1.73, not 1.5
    }
    net->eval();
    outs.push_back(net->forward(x));
    EXPECT_TRUE(outs.back().isfinite().all().item<bool>()) << v;
  }
  for (size_t a = 0; a < outs.size(); ++a)
    for (size_t b = a + 1; b < outs.size(); ++b)
      EXPECT_GT(max_abs_diff(outs[a], outs[b]), 1e-5) << variants[a] << " vs " << variants[b];
}

TEST(StanhopNet, NamesAndInitialisedMemories) {
  StanhopNet net(small("entmax_alpha"));
  std::set<std::string> names;
  for (const auto& p : net->named_parameters()) names.insert(p.key());
  for (const char* expected :
       {"enc_emb.linear.weight", "enc_pos", "pre_norm.weight", "dec_pos",
        "encoder.encode_blocks.0.encode_layers.0.time_gsh.query_projection.weight",
        "encoder.encode_blocks.0.encode_layers.0.series_pool.out_projection.bias",
        "encoder.encode_blocks.0.encode_layers.0.series_gsh.entmax_alpha_logit",
        "encoder.encode_blocks.0.encode_layers.0.memories", "encoder.encode_blocks.1.merge_layer.linear.weight",
        "encoder.encode_blocks.2.encode_layers.0.mlp2.2.weight", "decoder.decode_layers.3.self_layer.norm4.bias",
        "decoder.decode_layers.3.cross.key_projection.weight", "decoder.decode_layers.0.linear_pred.weight"})
    EXPECT_TRUE(names.count(expected)) << expected;
  EXPECT_FALSE(names.count("encoder.encode_blocks.0.merge_layer.linear.weight"));  // the first block keeps the scale
  // segments 4 -> 2 -> 1: each block's memories, factor 2 per segment.
  const auto params = net->named_parameters();
  EXPECT_EQ(params["encoder.encode_blocks.1.encode_layers.0.memories"].sizes(), (std::vector<int64_t>{2, 2, 8}));
  EXPECT_EQ(params["decoder.decode_layers.0.self_layer.memories"].sizes(), (std::vector<int64_t>{2, 2, 8}));
  StanhopConfig big = small();
  big.factor = 50, big.d_model = 64, big.num_heads = 4;
  StanhopNet wide(big);
  const auto memories = wide->named_parameters()["encoder.encode_blocks.0.encode_layers.0.memories"];
  EXPECT_NEAR(memories.std().item<double>(), 1.0, 0.05);  // N(0, 1), not uninitialised memory
}

TEST(StanhopNet, ObserversDoNotChangeTheOutputAndBadInputIsRejected) {
  StanhopNet net(small());
  net->eval();
  const auto x = at::randn({2, 13, 3});
  const auto plain = net->forward(x);
  auto points = std::make_shared<nn::ActivationPoints>();
  int64_t seen = 0;
  points->add_observer([&](const std::string&, const at::Tensor&) { ++seen; });
  net->set_activation_points(points);
  EXPECT_LE(max_abs_diff(net->forward(x), plain), 0.0);
  EXPECT_GT(seen, 100);
  EXPECT_THROW(net->forward(at::randn({2, 12, 3})), c10::Error);
  EXPECT_THROW(net->forward(at::randn({2, 13, 4})), c10::Error);
  EXPECT_THROW(net->forward(at::ones({2, 13, 3}, at::kLong)), c10::Error);
  auto bad = small();
  bad.d_model = 9;
  EXPECT_THROW(StanhopNet{bad}, c10::Error);
  bad = small();
  bad.seg_len = 0;
  EXPECT_THROW(StanhopNet{bad}, c10::Error);
}

TEST(StanhopNet, OutlierPresetHooksEveryModuleOutputAndGroupsEncoderScales) {
  StanhopNet net(small());
  net->eval();
  auto points = std::make_shared<nn::ActivationPoints>();
  analysis::OutlierStats stats;
  points->add_observer(analysis::outlier_observer(stats, analysis::stanhop_outlier_rows));
  points->set_transform([](const std::string&, const at::Tensor& x) { return x; });  // eager: scores reached too
  std::set<std::string> reached;
  points->add_observer([&](const std::string& name, const at::Tensor&) { reached.insert(name); });
  net->set_activation_points(points);
  net->forward(at::randn({2, 13, 3}));
  size_t skipped = 0;
  for (const auto& name : reached) {
    const bool internal = name.find("attn_scores") != std::string::npos || name.find("attn_probs") != std::string::npos;
    EXPECT_EQ(analysis::stanhop_outlier_rows(name),
              internal ? analysis::OutlierRows::kSkip : analysis::OutlierRows::kPerSample)
        << name;
    skipped += internal;
  }
  EXPECT_EQ(stats.modules().size(), reached.size() - skipped);
  EXPECT_GT(skipped, 0u);
  const auto layers = stats.per_layer();  // encoder scale blocks 0..2; embedding and decoder outside (-1)
  EXPECT_EQ(layers.size(), 4u);
  EXPECT_TRUE(layers.count(-1) && layers.count(0) && layers.count(2));
}

TEST(StanhopNet, TrainingStepsLowerTheLossAndEveryParameterLearns) {
  for (const char* variant : {"softmax1", "entmax_alpha"}) {
    torch::manual_seed(2);
    StanhopNet net(small(variant));
    const auto x = at::randn({8, 13, 3}), y = at::randn({8, 7, 3});
    torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(3e-3));
    double first = 0, last = 0;
    for (int step = 0; step < 30; ++step) {
      adam.zero_grad();
      const auto loss = at::mse_loss(net->forward(x), y);
      loss.backward();
      if (step == 0) {
        for (const auto& p : net->named_parameters()) {
          ASSERT_TRUE(p.value().grad().defined()) << variant << " " << p.key();
          EXPECT_TRUE(p.value().grad().isfinite().all().item<bool>()) << variant << " " << p.key();
        }
      }
      adam.step();
      (step == 0 ? first : last) = loss.item<double>();
    }
    EXPECT_LT(last, 0.7 * first) << variant;
  }
}

}  // namespace
}  // namespace outeffhop::models
