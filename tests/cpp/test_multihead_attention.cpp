// Attention variants by name and the multi-head attention module: every variant changes the computation, the fused
// and eager paths agree, clipped softmax_1 really is softmax_1, names map to Hugging Face / the reference, masks hold.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include <set>

#include "outeffhop/nn/attention_variant.h"
#include "outeffhop/nn/multihead_attention.h"
#include "outeffhop/sparse_maps.h"
#include "test_util.h"

namespace outeffhop::nn {
namespace {

using namespace outeffhop::testing;

const std::vector<std::string> kVariants = {
    "softmax",   "softmax1",     "softmax_n(3)",   "sink",           "clipped(-0.025,1)", "clipped_softmax1(-0.025,1)",
    "gated(linear)", "gated(mlp)", "gated_softmax1(linear)", "sparsemax", "entmax15", "entmax_alpha"};

MultiheadAttention make(const std::string& variant, double dropout = 0.0,
                        ProjectionNames names = ProjectionNames::opt(), int64_t kv_dim = 0) {
  torch::manual_seed(5);  // projections are registered first: every variant gets the same q/k/v/out weights
  MultiheadAttentionOptions o;
  o.embed_dim = 16, o.num_heads = 4, o.variant = parse_attention_variant(variant), o.dropout = dropout;
  o.names = std::move(names), o.kv_dim = kv_dim;
  MultiheadAttention m(o);
  m->eval();
  return m;
}

TEST(AttentionVariant, ParsesEveryNameAndRoundTrips) {
  const auto clipped1 = parse_attention_variant("clipped_softmax1(-0.025,1)");
  EXPECT_TRUE(clipped1.clipped);
  EXPECT_EQ(clipped1.n, 1.0);
  EXPECT_EQ(clipped1.gamma, -0.025);
  EXPECT_EQ(parse_attention_variant("clipped(-0.025,1)").n, 0.0);
  EXPECT_EQ(parse_attention_variant("softmax_n(3.5)").n, 3.5);
  EXPECT_EQ(parse_attention_variant("gated_softmax1(mlp)").gate, GateKind::kMlp);
  EXPECT_EQ(parse_attention_variant("gated(linear,0.5)").gate_bias_init, 0.5);
  for (const auto& spec : kVariants) {
    const auto v = parse_attention_variant(spec);
    const auto again = parse_attention_variant(v.name());
    EXPECT_EQ(again.name(), v.name()) << spec;
    EXPECT_EQ(again.n, v.n) << spec;
  }
  try {
    parse_attention_variant("softmax2");
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: softmax, softmax1"), std::string::npos);
  }
  EXPECT_THROW(parse_attention_variant("clipped(1,0)"), c10::Error);      // gamma >= eta
  EXPECT_THROW(parse_attention_variant("gated(conv)"), c10::Error);       // unknown gate
  EXPECT_THROW(parse_attention_variant("softmax_n(x)"), c10::Error);      // not a number
  EXPECT_THROW(parse_attention_variant("softmax_n(-1)"), c10::Error);
  EXPECT_THROW(parse_attention_variant("clipped(,1)"), c10::Error);       // empty: was read as gamma 0
  EXPECT_THROW(parse_attention_variant("clipped(-0.1x,1)"), c10::Error);  // trailing text
  try {  // what an unquoted YAML list [clipped(-0.025,1)] passes on: the message says to quote it
    parse_attention_variant("clipped(-0.025");
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("quote a name with a comma"), std::string::npos) << e.what();
  }
}

TEST(MultiheadAttention, EveryVariantChangesTheOutput) {
  torch::manual_seed(1);
  const auto x = torch::randn({2, 7, 16});
  std::vector<at::Tensor> outs;
  for (const auto& spec : kVariants) {
    auto m = make(spec);
    if (spec == "sink") {
      torch::NoGradGuard no_grad;
      m->named_parameters()["sink"].fill_(2.0);  // a sink of 0 is exactly softmax_1 (tested below)
    }
    if (spec == "entmax_alpha") {
      torch::NoGradGuard no_grad;
      m->named_parameters()["entmax_alpha_logit"].fill_(-1.0);  // alpha 1.5 (logit 0) is entmax15 (tested below)
    }
    outs.push_back(m->forward(x));
  }
  for (size_t a = 0; a < outs.size(); ++a)
    for (size_t b = a + 1; b < outs.size(); ++b)
      EXPECT_GT(max_abs_diff(outs[a], outs[b]), 1e-4) << kVariants[a] << " vs " << kVariants[b];
}

TEST(MultiheadAttention, SinkAtZeroIsSoftmax1) {
  const auto x = torch::randn({2, 5, 16});
  EXPECT_LE(max_abs_diff(make("sink")->forward(x), make("softmax1")->forward(x)), kTolF32);
}

TEST(MultiheadAttention, FusedAndEagerPathsAgreeForEveryVariant) {
  // Training with a vanishing dropout probability takes the eager path (materialised probabilities, then dropout,
  // which keeps everything); evaluation takes the attention op (the fused kernel on CPU).
  const auto x = torch::randn({2, 9, 16});
  const auto padding = torch::rand({2, 9}) > 0.2;
  for (const auto& spec : kVariants) {
    for (const bool causal : {false, true}) {
      auto m = make(spec, 1e-12);
      const auto fused = m->forward(x, {}, padding, {}, causal);
      m->train();
      const auto eager = m->forward(x, {}, padding, {}, causal);
      EXPECT_LE(max_abs_diff(fused, eager), kTolF32) << spec << (causal ? " causal" : "");
    }
  }
}

TEST(MultiheadAttention, ClippedSoftmax1UsesSoftmax1) {
  // The public OPT code's "clipped OutEffHop" trained clipped vanilla softmax; here the probabilities must be
  // clip((eta - gamma) softmax_1 + gamma) computed from the same scores.
  const auto x = torch::randn({1, 6, 16});
  auto clipped1 = make("clipped_softmax1(-0.025,1)"), plain1 = make("softmax1"), plain0 = make("softmax");
  const auto p = clipped1->probabilities(x);
  const auto expected1 = at::clamp(plain1->probabilities(x) * 1.025 - 0.025, 0.0, 1.0);
  const auto expected0 = at::clamp(plain0->probabilities(x) * 1.025 - 0.025, 0.0, 1.0);
  EXPECT_LE(max_abs_diff(p, expected1), kTolF32);
  EXPECT_GT(max_abs_diff(p, expected0), 1e-3);
  // softmax_1 rows keep mass for the no-op key; softmax rows sum to one.
  EXPECT_LT(plain1->probabilities(x).sum(-1).max().item<double>(), 1.0 - 1e-3);
  EXPECT_LE(max_abs_diff(plain0->probabilities(x).sum(-1), at::ones({1, 4, 6})), kTolF32);
}

TEST(MultiheadAttention, SparseMapsMatchTheBisectionOracle) {
  // Oracle: scores from the projections in float64 by hand, then the float64 bisection (independent of the sort-based
  // sparsemax / entmax15 kernels and of the module's code path). entmax_alpha starts at alpha = 1.5. Seeded, and
  // scaled so that the scores spread enough for exact zeros among the kept keys whatever ran before.
  at::manual_seed(17);
  const auto x = 4 * torch::randn({2, 6, 16});
  const auto padding = torch::rand({2, 6}) > 0.3;
  for (const auto& [spec, alpha] :
       {std::pair{"sparsemax", 2.0}, std::pair{"entmax15", 1.5}, std::pair{"entmax_alpha", 1.5}}) {
    auto m = make(spec);
    auto params = m->named_parameters();
    auto heads = [&](const std::string& name) {
      const auto y = at::linear(x.to(at::kDouble), params[name + ".weight"].to(at::kDouble),
                                params[name + ".bias"].to(at::kDouble));
      return y.view({2, 6, 4, 4}).transpose(1, 2);
    };
    auto scores = at::matmul(heads("q_proj"), heads("k_proj").transpose(-2, -1)) / 2.0;  // 1/sqrt(head dim 4)
    scores = scores.masked_fill(padding.logical_not().view({2, 1, 1, 6}), -INFINITY);
    const auto expected = reference::entmax_by_bisection(scores, at::full({}, alpha, scores.options()), -1);
    const auto p = m->probabilities(x, {}, padding);
    EXPECT_LE(max_abs_diff(p, expected), kTolF32) << spec;
    EXPECT_GT((p == 0).logical_and(padding.view({2, 1, 1, 6})).sum().item<int64_t>(), 0) << spec << " is not sparse";
  }
}

TEST(MultiheadAttention, ParameterNamesFollowHuggingFaceAndTheReference) {
  auto names_of = [](const MultiheadAttention& m) {
    std::set<std::string> names;
    for (const auto& item : m->named_parameters()) names.insert(item.key());
    return names;
  };
  const std::set<std::string> opt = {"q_proj.weight", "q_proj.bias", "k_proj.weight",   "k_proj.bias",
                                     "v_proj.weight", "v_proj.bias", "out_proj.weight", "out_proj.bias"};
  EXPECT_EQ(names_of(make("softmax1")), opt);
  auto with_sink = opt;
  with_sink.insert("sink");
  EXPECT_EQ(names_of(make("sink")), with_sink);
  const auto gated = names_of(make("gated(linear)"));
  EXPECT_TRUE(gated.count("alpha.0.weight") && gated.count("alpha.3.bias"));
  const auto mlp = names_of(make("gated(mlp)"));
  EXPECT_TRUE(mlp.count("alpha.2.0.weight") && mlp.count("alpha.2.2.bias"));
  const std::set<std::string> bert = {"query.weight", "query.bias", "key.weight",
                                      "key.bias",     "value.weight", "value.bias"};
  EXPECT_EQ(names_of(make("softmax", 0.0, ProjectionNames::bert())), bert);
  // Gates start at sigmoid(logit(0.25)) = 0.25 on zero input.
  auto m = make("gated(linear)");
  EXPECT_NEAR(m->named_parameters()["alpha.1.bias"].item<double>(), std::log(0.25 / 0.75), 1e-6);
}

TEST(MultiheadAttention, PaddedKeysDoNotLeakAndCrossAttentionWorks) {
  const auto q = torch::randn({2, 4, 16});
  auto kv = torch::randn({2, 6, 8});
  auto padding = torch::ones({2, 6}, torch::kBool);
  padding.index_put_({0, torch::indexing::Slice(4, 6)}, false);
  for (const auto& spec : kVariants) {
    auto m = make(spec, 0.0, ProjectionNames::opt(), 8);
    const auto out = m->forward(q, kv, padding);
    auto changed = kv.clone();
    changed.index_put_({0, torch::indexing::Slice(4, 6)}, 100.0);
    EXPECT_LE(max_abs_diff(m->forward(q, changed, padding).select(0, 0), out.select(0, 0)), 0.0) << spec;
    EXPECT_EQ(out.sizes(), q.sizes());
  }
}

TEST(MultiheadAttention, EveryParameterGetsAFiniteGradient) {
  const auto x = torch::randn({2, 5, 16});
  for (const auto& spec : kVariants) {
    auto m = make(spec);
    m->train();
    m->forward(x, {}, {}, {}, true).pow(2).sum().backward();
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << spec << " " << p.key();
      EXPECT_TRUE(p.value().grad().isfinite().all().item<bool>()) << spec << " " << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << spec << " " << p.key();
    }
  }
}

TEST(MultiheadAttention, RejectsBadShapes) {
  auto m = make("softmax1");
  EXPECT_THROW(m->forward(torch::randn({2, 5, 15})), c10::Error);
  EXPECT_THROW(m->forward(torch::randn({2, 5, 16}), {}, torch::ones({2, 4}, torch::kBool)), c10::Error);
  MultiheadAttentionOptions bad;
  bad.embed_dim = 10, bad.num_heads = 4;
  EXPECT_THROW(MultiheadAttention{bad}, c10::Error);
}

}  // namespace
}  // namespace outeffhop::nn
