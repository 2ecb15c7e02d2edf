// BERT: Hugging Face names, post-LN shapes, the predict-positions head equals the full head at those positions,
// every variant runs, points never change outputs, INT8 input points exist, the paper's hooked modules; sentence
// splitting; and, where the shared data is present, the MLM masking statistics of the bert task (15% of real tokens,
// 80/10/10, never a special token).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <set>

#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/analysis/outlier_points.h"
#include "outeffhop/data.h"
#include "outeffhop/experiment/task.h"
#include "outeffhop/models/bert.h"
#include "outeffhop/tokenizers.h"
#include "test_util.h"

namespace outeffhop {
namespace {

models::BertConfig tiny_bert(const std::string& variant = "softmax1") {
  models::BertConfig c;
  c.vocab_size = 40, c.d_model = 16, c.num_layers = 2, c.num_heads = 2, c.d_ff = 32, c.max_positions = 12;
  c.variant = nn::parse_attention_variant(variant);
  return c;
}

TEST(Bert, NamesShapesAndPredictPositions) {
  at::manual_seed(0);
  models::BertForMaskedLM m(tiny_bert());
  m->eval();
  const auto params = m->named_parameters();
  for (const char* name : {"bert.embeddings.word_embeddings.weight", "bert.embeddings.token_type_embeddings.weight",
                           "bert.embeddings.LayerNorm.weight", "bert.encoder.layer.1.attention.self.key.bias",
                           "bert.encoder.layer.0.output.LayerNorm.weight", "cls.predictions.bias",
                           "cls.predictions.transform.dense.weight", "cls.predictions.transform.LayerNorm.bias"})
    EXPECT_TRUE(params.contains(name)) << name;
  const auto ids = at::randint(40, {3, 10}, at::kLong), types = at::randint(2, {3, 10}, at::kLong);
  auto keep = at::ones({3, 10}, at::kLong);
  keep[2].slice(0, 6).fill_(0);  // padding
  const auto full = m->forward(ids, types, keep);
  EXPECT_EQ(full.sizes(), (at::IntArrayRef{3, 10, 40}));
  const auto predict = at::rand({3, 10}).lt(0.3);
  EXPECT_TRUE(at::allclose(m->forward(ids, types, keep, predict), full.index({predict}), 1e-5, 1e-6));
  // Padding keys are ignored: changing a padded token leaves the real tokens' logits unchanged.
  auto changed = ids.clone();
  changed[2][8] = (changed[2][8].item<int64_t>() + 1) % 40;
  EXPECT_TRUE(at::allclose(m->forward(changed, types, keep)[2].slice(0, 0, 6), full[2].slice(0, 0, 6), 1e-5, 1e-6));
  EXPECT_THROW(m->forward(ids, types.slice(1, 0, 5)), c10::Error);
  auto expect_range_error = [&](const at::Tensor& i, const at::Tensor& t, const std::string& message) {
    try {
      m->forward(i, t, keep);
      ADD_FAILURE() << "accepted: " << message;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find(message), std::string::npos) << e.what_without_backtrace();
    }
  };
  auto outside = ids.clone();
  outside[0][0] = 40, outside[0][1] = 0;
  expect_range_error(outside, types, "token ids must lie in [0, 40), got values from 0 to 40");
  expect_range_error(ids, types + 1, "token_type_ids must lie in [0, 2)");
}

TEST(Bert, VariantsPointsHooksAndInt8InputPoints) {
  for (const char* variant : {"softmax", "softmax1", "clipped(-0.025,1)", "gated_softmax1(mlp)"}) {
    at::manual_seed(1);
    models::BertForMaskedLM m(tiny_bert(variant));
    m->eval();
    const auto ids = at::randint(40, {2, 8}, at::kLong);
    const auto plain = m->forward(ids);
    auto points = std::make_shared<nn::ActivationPoints>();
    std::set<std::string> seen;
    points->add_observer([&](const std::string& name, const at::Tensor&) { seen.insert(name); });
    m->set_activation_points(points);
    EXPECT_TRUE(at::equal(m->forward(ids), plain)) << variant;
    for (const auto& item : m->named_modules()) {
      if (!item.value()->as<torch::nn::Linear>() || item.key().find("bert.encoder") != 0 ||
          item.key().find(".alpha.") != std::string::npos)
        continue;
      EXPECT_TRUE(seen.contains(analysis::bert_linear_input_point(item.key()))) << item.key();
      EXPECT_TRUE(seen.contains(item.key())) << item.key();
    }
  }
  EXPECT_EQ(analysis::bert_linear_input_point("bert.encoder.layer.0.attention.self.query"),
            "bert.embeddings.LayerNorm");
  EXPECT_EQ(analysis::bert_linear_input_point("bert.encoder.layer.3.attention.self.value"),
            "bert.encoder.layer.2.output.LayerNorm");
  EXPECT_EQ(analysis::bert_linear_input_point("bert.encoder.layer.3.attention.output.dense"),
            "bert.encoder.layer.3.attention.self.context");
  EXPECT_EQ(analysis::bert_outlier_rows("bert.encoder.layer.3.output.dense"), analysis::OutlierRows::kPerSample);
  EXPECT_EQ(analysis::bert_outlier_rows("bert.encoder.layer.3.output.LayerNorm"), analysis::OutlierRows::kPerSample);
  EXPECT_EQ(analysis::bert_outlier_rows("bert.encoder.layer.3.attention.output.dense"), analysis::OutlierRows::kSkip);
}

TEST(Text, SentenceSplitting) {
  using V = std::vector<std::string>;
  EXPECT_EQ(data::split_sentences("One two.  Three?\n\"Four!\" five\n\nsix\nseven"),
            (V{"One two.", "Three?", "\"Four!\"", "five", "six seven"}));
  // A period inside a word does not end a sentence; one before a space does, abbreviations included (the rule is
  // simple on purpose).
  EXPECT_EQ(data::split_sentences("3.14 is pi. e.g. this"), (V{"3.14 is pi.", "e.g.", "this"}));
  EXPECT_TRUE(data::split_sentences(" \n\n ").empty());
}

TEST(BertTask, MaskingStatistics) {
  const auto dir = testing::shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared/data";
  const nlohmann::json config = {
      {"task", "bert"}, {"data", {{"seq", 64}}}, {"train", {{"batch", 64}}}, {"eval", {{"batches", 1}}}};
  const auto task = experiment::make_task(experiment::ConfigReader(config, "test"), dir);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  int64_t real = 0, masked = 0, as_mask = 0, unchanged = 0, specials_masked = 0;
  const data::WordPieceTokenizer wp(dir + "/tokenizers/bert-base-uncased-vocab.txt");
  const int64_t cls = wp.id("[CLS]"), sep = wp.id("[SEP]"), pad = wp.id("[PAD]"), mask = wp.id("[MASK]");
  for (int i = 0; i < 20; ++i) {
    const auto b = task->train_batch(gen);
    ASSERT_EQ(b.input.sizes(), (at::IntArrayRef{64, 4, 64}));
    const auto input = b.input.select(1, 0), keep = b.input.select(1, 2).to(at::kBool);
    const auto predict = b.input.select(1, 3).to(at::kBool);
    ASSERT_EQ(b.target.size(0), predict.sum().item<int64_t>());
    EXPECT_TRUE(input.select(1, 0).eq(cls).all().item<bool>());  // every row starts with [CLS]
    const auto unmasked = keep.logical_and(predict.logical_not());
    EXPECT_TRUE(input.eq(sep).logical_and(unmasked).sum(1).eq(2).all().item<bool>());  // two [SEP] per row
    const auto originals = b.target, at_masked = input.index({predict});
    real += keep.sum().item<int64_t>() - 3 * 64;  // every real token but [CLS] and the two [SEP]
    masked += originals.size(0);
    as_mask += at_masked.eq(mask).sum().item<int64_t>();
    unchanged += at_masked.eq(originals).sum().item<int64_t>();
    specials_masked +=
        originals.eq(cls).logical_or(originals.eq(sep)).logical_or(originals.eq(pad)).sum().item<int64_t>();
    EXPECT_FALSE(predict.logical_and(keep.logical_not()).any().item<bool>());  // never a padding position
  }
  EXPECT_EQ(specials_masked, 0);
  // Binomial counts over ~70k real tokens: a few standard deviations of slack.
  EXPECT_NEAR(static_cast<double>(masked) / real, 0.15, 0.01);
  EXPECT_NEAR(static_cast<double>(as_mask) / masked, 0.80, 0.02);
  EXPECT_NEAR(static_cast<double>(unchanged) / masked, 0.10 + 0.10 / 30522, 0.02);
}

TEST(BertTask, HeldOutBlocksAreAnEvenlySpreadExactFraction) {
  // 2% of 1,000 blocks of 100: 20 blocks, whole, one in every 50.
  int64_t held = 0, half = 0;
  for (size_t i = 0; i < 100000; ++i) {
    const bool in = data::in_held_out_block(i, 0.02);
    EXPECT_EQ(in, data::in_held_out_block(i - i % 100, 0.02));  // whole blocks
    held += in, half += data::in_held_out_block(i, 0.5);
  }
  EXPECT_EQ(held, 2000);
  EXPECT_EQ(half, 50000);
  EXPECT_FALSE(data::in_held_out_block(0, 0.02));  // block 0 trains; block 49 is the first held out
  EXPECT_TRUE(data::in_held_out_block(4900, 0.02));
  EXPECT_FALSE(data::in_held_out_block(5000, 0.02));
  for (size_t i = 0; i < 10000; ++i) EXPECT_FALSE(data::in_held_out_block(i, 0.0));
  EXPECT_THROW(data::in_held_out_block(0, -0.1), c10::Error);
}

}  // namespace
}  // namespace outeffhop
