// The ViT classifier and the Hugging Face BERT/ViT encoder layer: parameter names, shapes, every attention variant,
// activation points that never change outputs, training lowers the loss; the shared initialisation keeps the gate
// biases at logit(0.25) (OPT included).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/analysis/outlier_points.h"
#include "outeffhop/models/opt.h"
#include "outeffhop/models/vit.h"
#include "outeffhop/nn/encoder_layer.h"
#include "outeffhop/train.h"

namespace outeffhop {
namespace {

models::VitConfig tiny_vit(const std::string& variant = "softmax1") {
  models::VitConfig c;
  c.image_size = 8, c.patch_size = 4, c.channels = 3, c.num_classes = 5, c.d_model = 16, c.num_layers = 2;
  c.num_heads = 2, c.d_ff = 32;
  c.variant = nn::parse_attention_variant(variant);
  return c;
}

TEST(Vit, HuggingFaceNamesAndShapes) {
  at::manual_seed(0);
  models::VitForImageClassification m(tiny_vit());
  const auto params = m->named_parameters();
  for (const char* name :
       {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
        "vit.embeddings.patch_embeddings.projection.weight", "vit.encoder.layer.1.layernorm_before.weight",
        "vit.encoder.layer.0.attention.attention.query.weight", "vit.encoder.layer.0.attention.output.dense.bias",
        "vit.encoder.layer.1.intermediate.dense.weight", "vit.encoder.layer.1.output.dense.weight",
        "vit.encoder.layer.0.layernorm_after.bias", "vit.layernorm.weight", "classifier.weight"})
    EXPECT_TRUE(params.contains(name)) << name;
  EXPECT_EQ(params["vit.embeddings.position_embeddings"].sizes(), (at::IntArrayRef{1, 5, 16}));  // 4 patches + class
  EXPECT_EQ(m->forward(at::randn({3, 3, 8, 8})).sizes(), (at::IntArrayRef{3, 5}));
  EXPECT_THROW(m->forward(at::randn({3, 1, 8, 8})), c10::Error);
  auto bad = tiny_vit();
  bad.patch_size = 3;
  EXPECT_THROW(models::VitForImageClassification{bad}, c10::Error);
}

TEST(Vit, EveryVariantRunsAndPointsNeverChangeOutputs) {
  for (const char* variant : {"softmax", "softmax1", "clipped(-1e-5,1)", "clipped_softmax1(-1e-5,1)", "gated(linear)",
                              "gated_softmax1(linear)", "sink"}) {
    at::manual_seed(1);
    models::VitForImageClassification m(tiny_vit(variant));
    m->eval();
    const auto x = at::randn({2, 3, 8, 8});
    const auto plain = m->forward(x);
    EXPECT_TRUE(plain.isfinite().all().item<bool>()) << variant;
    auto points = std::make_shared<nn::ActivationPoints>();
    std::set<std::string> seen;
    points->add_observer([&](const std::string& name, const at::Tensor&) { seen.insert(name); });
    m->set_activation_points(points);
    EXPECT_TRUE(at::equal(m->forward(x), plain)) << variant;
    for (const char* p :
         {"vit.embeddings", "vit.encoder.layer.1.layernorm_before", "vit.encoder.layer.1.attention.attention.context",
          "vit.encoder.layer.1.attention_residual", "vit.encoder.layer.1.intermediate.intermediate_act_fn",
          "vit.encoder.layer.1", "vit.layernorm"})
      EXPECT_TRUE(seen.contains(p)) << variant << " " << p;
    // Real INT8 needs every encoder Linear's input point to be one the model passes.
    for (const auto& item : m->named_modules()) {
      if (!item.value()->as<torch::nn::Linear>() || item.key().find(".alpha.") != std::string::npos ||
          item.key() == "classifier")
        continue;
      const auto input = analysis::vit_linear_input_point(item.key());
      EXPECT_TRUE(seen.contains(input)) << item.key() << " -> '" << input << "'";
      EXPECT_TRUE(seen.contains(item.key())) << item.key();
    }
    EXPECT_EQ(analysis::vit_outlier_rows("vit.encoder.layer.1"), analysis::OutlierRows::kPerSample);
    EXPECT_EQ(analysis::vit_outlier_rows("vit.encoder.layer.1.attention_residual"), analysis::OutlierRows::kSkip);
  }
}

TEST(Vit, TrainingStepsLowerTheLossOnAFixedBatch) {
  at::manual_seed(0);
  models::VitForImageClassification m(tiny_vit());
  const auto x = at::randn({8, 3, 8, 8}), y = at::randint(5, {8}, at::kLong);
  train::TrainOptions o;
  o.steps = 30, o.lr = 3e-3, o.warmup = 3;
  auto opt = train::make_adamw(*m, o);
  std::vector<double> losses;
  train::train(
      *m, *opt, o, [&](int64_t) { return at::cross_entropy_loss(m->forward(x), y); },
      [&](const train::StepReport& r) { losses.push_back(r.loss); });
  EXPECT_LT(losses.back(), losses.front() - 0.5);
}

TEST(EncoderLayer, BertNamesAndPostNorm) {
  nn::EncoderLayerOptions o;
  o.d_model = 8, o.num_heads = 2, o.d_ff = 16, o.norm = nn::NormPosition::kPost;
  o.variant = nn::parse_attention_variant("softmax1");
  nn::EncoderLayer layer(o);
  const auto params = layer->named_parameters();
  for (const char* name :
       {"attention.self.query.weight", "attention.output.dense.weight", "attention.output.LayerNorm.weight",
        "intermediate.dense.bias", "output.dense.weight", "output.LayerNorm.bias"})
    EXPECT_TRUE(params.contains(name)) << name;
  // Post-LN: the output is a LayerNorm output with unit gamma and zero beta: every token has mean 0 and variance 1.
  const auto out = layer->forward(at::randn({2, 5, 8}));
  EXPECT_LT(out.mean(-1).abs().max().item<double>(), 1e-5);
  EXPECT_NEAR(out.var(-1, /*unbiased=*/false).mean().item<double>(), 1.0, 1e-3);
}

TEST(Init, GateBiasesKeepLogitQuarterInOptAndVit) {
  const double logit_quarter = std::log(0.25 / 0.75);
  models::OptConfig c;
  c.vocab_size = 16, c.d_model = 8, c.num_heads = 2, c.d_ff = 16, c.num_layers = 1, c.max_positions = 8;
  c.variant = nn::parse_attention_variant("gated(linear)");
  models::OptForCausalLM opt(c);
  models::VitForImageClassification vit(tiny_vit("gated_softmax1(linear)"));
  int checked = 0;
  for (const auto& params : {opt->named_parameters(), vit->named_parameters()})
    for (const auto& p : params)
      if (p.key().find(".alpha.") != std::string::npos && p.key().find(".bias") != std::string::npos) {
        EXPECT_NEAR(p.value().item<double>(), logit_quarter, 1e-6) << p.key();
        ++checked;
      }
  EXPECT_EQ(checked, 2 + 2 * 2);  // one gate per head and layer
}

}  // namespace
}  // namespace outeffhop
