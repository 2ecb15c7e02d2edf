// The OPT-style LM and what the outlier experiment runs on it: activation points (never change outputs), Hugging
// Face parameter names, training lowers the loss, simulated W8A8 (calibrate, quantize, restore), the outlier-point
// preset, schedules and decay groups, Gutenberg stripping; the lm task's held-out books.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "outeffhop/analysis/outlier_points.h"
#include "outeffhop/analysis/precision.h"
#include "outeffhop/analysis/w8a8.h"
#include "outeffhop/data.h"
#include "outeffhop/experiment/task.h"
#include "outeffhop/models/opt.h"
#include "outeffhop/outliers.h"
#include "outeffhop/train.h"
#include "test_util.h"

namespace outeffhop {
namespace {

models::OptConfig tiny(const std::string& variant = "softmax1") {
  models::OptConfig c;
  c.vocab_size = 32, c.d_model = 16, c.num_layers = 2, c.num_heads = 2, c.d_ff = 32, c.max_positions = 24;
  c.variant = nn::parse_attention_variant(variant);
  return c;
}

// The tiny OPT in eval mode with activation points attached: what the precision tests transform.
struct TinyWithPoints {
  TinyWithPoints() : m(tiny()), points(std::make_shared<nn::ActivationPoints>()) {
    m->eval();
    m->set_activation_points(points);
  }
  models::OptForCausalLM m{nullptr};
  nn::ActivationPointsPtr points;
};

at::Tensor ids(int64_t b, int64_t t, int64_t seed = 0) {
  at::manual_seed(seed);
  return at::randint(32, {b, t}, at::kLong);
}

TEST(OptModel, HuggingFaceNamesShapesAndTiedHead) {
  at::manual_seed(0);
  models::OptForCausalLM m(tiny());
  const auto params = m->named_parameters();
  for (const char* name : {"model.decoder.embed_tokens.weight", "model.decoder.embed_positions.weight",
                           "model.decoder.layers.1.self_attn.q_proj.weight", "model.decoder.layers.0.fc2.bias",
                           "model.decoder.layers.0.self_attn_layer_norm.weight",
                           "model.decoder.final_layer_norm.bias"})
    EXPECT_TRUE(params.contains(name)) << name;
  EXPECT_EQ(params["model.decoder.embed_positions.weight"].size(0), 24 + 2);  // OPT's position offset
  for (const auto& p : params) EXPECT_EQ(p.key().find("lm_head"), std::string::npos);  // tied to embed_tokens
  EXPECT_EQ(m->forward(ids(3, 7)).sizes(), at::IntArrayRef({3, 7, 32}));
  EXPECT_THROW(m->forward(ids(1, 25)), c10::Error);  // longer than max_positions
  for (const int64_t bad : {32, -1}) {  // outside the vocabulary: a message naming the range, not the lookup's
    auto wrong = ids(2, 5);
    wrong[1][3] = bad;
    try {
      m->forward(wrong);
      ADD_FAILURE() << "token id " << bad << " was accepted";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find("token ids must lie in [0, 32)"), std::string::npos)
          << e.what_without_backtrace();
    }
  }
}

TEST(OptModel, IsCausal) {
  at::manual_seed(0);
  models::OptForCausalLM m(tiny("softmax"));
  m->eval();
  auto x = ids(1, 10);
  const auto a = m->forward(x);
  x[0][7] = (x[0][7].item<int64_t>() + 1) % 32;
  const auto b = m->forward(x);
  EXPECT_TRUE(at::allclose(a.slice(1, 0, 7), b.slice(1, 0, 7)));
  EXPECT_FALSE(at::allclose(a.slice(1, 7), b.slice(1, 7)));
}

TEST(ActivationPoints, ObserversNeverChangeOutputsAndSeeTheNamedPoints) {
  at::manual_seed(0);
  models::OptForCausalLM m(tiny());
  m->eval();
  const auto x = ids(2, 9);
  const auto plain = m->forward(x);
  auto points = std::make_shared<nn::ActivationPoints>();
  std::set<std::string> seen;
  points->add_observer([&](const std::string& name, const at::Tensor&) { seen.insert(name); });
  m->set_activation_points(points);
  EXPECT_TRUE(at::equal(m->forward(x), plain));
  for (const char* name : {"model.decoder.embeddings", "model.decoder.layers.0", "model.decoder.layers.1.fc2",
                           "model.decoder.layers.1.fc1", "model.decoder.layers.0.activation_fn",
                           "model.decoder.layers.0.self_attn.out_proj", "model.decoder.layers.0.self_attn.q_proj",
                           "model.decoder.layers.0.self_attn_residual", "model.decoder.final_layer_norm"})
    EXPECT_TRUE(seen.contains(name)) << name;
  EXPECT_FALSE(seen.contains("model.decoder.layers.0.self_attn.attn_probs"));  // fused path: no probabilities

  // An identity transform materialises the probabilities (eager path): same outputs to rounding.
  points->set_transform([](const std::string&, const at::Tensor& t) { return t; });
  seen.clear();
  EXPECT_TRUE(at::allclose(m->forward(x), plain, 1e-5, 1e-5));
  EXPECT_TRUE(seen.contains("model.decoder.layers.1.self_attn.attn_probs"));
  EXPECT_TRUE(seen.contains("model.decoder.layers.1.self_attn.attn_scores"));
}

TEST(OptModel, TrainingStepsLowerTheLossOnAFixedBatch) {
  at::manual_seed(0);
  models::OptForCausalLM m(tiny());
  const auto batch = ids(4, 16, 3);
  train::TrainOptions o;
  o.steps = 40, o.lr = 3e-3, o.warmup = 5;
  auto opt = train::make_adamw(*m, o);
  std::vector<double> losses;
  train::train(*m, *opt, o, [&](int64_t) { return m->loss(batch); },
               [&](const train::StepReport& r) { losses.push_back(r.loss); });
  ASSERT_EQ(losses.size(), 40u);
  EXPECT_LT(losses.back(), losses.front() - 0.5);
}

TEST(Train, ScheduleAndDecayGroups) {
  train::TrainOptions o;
  o.steps = 10, o.lr = 1.0, o.warmup = 2;
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 0), 0.5);
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 1), 1.0);
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 2), 1.0);   // decay starts after warmup
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 6), 0.5);   // 4 of 8 decay steps
  o.schedule = "cosine";
  EXPECT_NEAR(train::learning_rate(o, 6), 0.5, 1e-12);
  o.schedule = "halving", o.halve_every = 3, o.halvings = 2;  // STanHop's step schedule, here every 3 steps
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 4), 1.0);             // steps 2-4 after warmup: not yet halved
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 5), 0.5);
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 8), 0.25);
  EXPECT_DOUBLE_EQ(train::learning_rate(o, 40), 0.25);  // at most `halvings` times
  o.halve_every = 0;
  EXPECT_THROW(train::learning_rate(o, 5), c10::Error);
  o.schedule = "nope";
  EXPECT_THROW(train::learning_rate(o, 5), c10::Error);

  models::OptForCausalLM m(tiny("sink"));
  auto opt = train::make_adamw(*m, train::TrainOptions{});
  const auto& groups = opt->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  for (const auto& p : groups[0].params()) EXPECT_GE(p.dim(), 2);  // decayed: matrices
  for (const auto& p : groups[1].params()) EXPECT_EQ(p.dim(), 1);  // not decayed: biases, LayerNorm, sinks
  EXPECT_EQ(static_cast<const torch::optim::AdamWOptions&>(groups[1].options()).weight_decay(), 0.0);
}

TEST(W8A8, CalibrateQuantizeRestore) {
  at::manual_seed(0);
  TinyWithPoints tiny_model;
  auto& [m, points] = tiny_model;
  const auto x = ids(4, 12);
  const auto fp32 = m->forward(x);
  const auto table = m->named_parameters()["model.decoder.embed_tokens.weight"];
  analysis::W8A8Simulation sim(*m, points, {{"model.decoder.embed_tokens", table}});
  EXPECT_THROW(sim.quantize(), c10::Error);  // nothing calibrated
  sim.start_calibration();  // calibration passes values unchanged (the eager attention path: equal to rounding)
  EXPECT_TRUE(at::allclose(m->forward(x), fp32, 1e-5, 1e-5));

  sim.quantize();
  const auto q = m->forward(x);
  EXPECT_FALSE(at::equal(q, fp32));
  EXPECT_LT((q - fp32).abs().max().item<double>(), 0.5);  // 8 bits: close, not equal
  EXPECT_FALSE(sim.ranges().empty());
  for (const auto& r : sim.ranges()) EXPECT_LE(r.second.first, r.second.second) << r.first;
  // The lookup rule the simulation applies to embeddings: rows quantized with the table's scale are the rows of the
  // symmetrically quantized table.
  const double delta = table.abs().max().item<double>() / 127;
  EXPECT_TRUE(at::allclose(fake_quant_asym(at::embedding(table.detach(), x), -128 * delta, 127 * delta),
                           at::embedding(fake_quant_sym(table.detach()), x)));
  sim.restore();
  EXPECT_TRUE(at::equal(m->forward(x), fp32));  // weights and points back to float

  // Points kept in float are never calibrated nor quantized: with every activation kept, only weights change.
  analysis::W8A8Options weights_only;
  weights_only.keep_float = [](const std::string&) { return true; };
  analysis::W8A8Simulation w(*m, points, {}, weights_only);
  w.start_calibration();
  m->forward(x);
  EXPECT_TRUE(w.ranges().empty());
  w.quantize();
  const auto wq = m->forward(x);
  EXPECT_FALSE(at::equal(wq, fp32));
  EXPECT_LT((wq - fp32).abs().max().item<double>(), (q - fp32).abs().max().item<double>() + 1e-6);
}

// Ranges from an earlier calibration quantize exactly as that calibration did, without a calibration pass; with a
// point kept in float, the same as a calibration that skipped it; a range that is not one is refused.
TEST(W8A8, QuantizesWithTheRangesOfAnEarlierCalibration) {
  at::manual_seed(0);
  TinyWithPoints tiny_model;
  auto& [m, points] = tiny_model;
  const auto x = ids(4, 12);
  const auto quantized = [&](const analysis::W8A8Options& options, const auto& ranges) {
    analysis::W8A8Simulation sim(*m, points, {}, options);
    if (ranges.empty()) {
      sim.start_calibration();
      m->forward(ids(4, 12));  // another batch than x
    }
    ranges.empty() ? sim.quantize() : sim.quantize(ranges);
    return std::pair{m->forward(x), sim.ranges()};
  };
  const std::vector<std::pair<std::string, std::pair<double, double>>> none;
  const auto [calibrated, ranges] = quantized({}, none);
  const auto [again, same_ranges] = quantized({}, ranges);
  EXPECT_TRUE(at::equal(again, calibrated));
  EXPECT_EQ(same_ranges, ranges);
  analysis::W8A8Options residual_in_float;
  residual_in_float.keep_float = [](const std::string& name) { return name.ends_with(".self_attn_residual"); };
  const auto [skipped, fewer] = quantized(residual_in_float, none);
  const auto [skipped_again, fewer_again] = quantized(residual_in_float, ranges);
  EXPECT_TRUE(at::equal(skipped_again, skipped));
  EXPECT_EQ(fewer_again, fewer);
  EXPECT_LT(fewer.size(), ranges.size());
  EXPECT_FALSE(at::equal(skipped, calibrated));
  analysis::W8A8Simulation sim(*m, points, {});
  EXPECT_THROW(sim.quantize({{"model.decoder.embeddings", {1.0, -1.0}}}), c10::Error);
}

// Per-channel weights: every Linear weight row is fake_quant_sym of that row alone (its own scale), LayerNorm gammas
// stay on their tensor's grid; the rows' own scales lose less than one scale per tensor, and restore() undoes it.
TEST(W8A8, PerChannelWeightsQuantizeEachRowOnItsOwnGrid) {
  at::manual_seed(0);
  TinyWithPoints tiny_model;
  auto& [m, points] = tiny_model;
  std::map<std::string, at::Tensor> before;
  for (const auto& p : m->named_parameters()) before[p.key()] = p.value().detach().clone();
  std::map<std::string, analysis::WeightError> errors;  // the last simulation's, by name
  const auto weights_after = [&](bool per_channel, int64_t bits) {
    analysis::W8A8Options options;
    options.keep_float = [](const std::string&) { return true; };  // weights only
    options.per_channel_weights = per_channel;
    options.weight_bits = bits;
    analysis::W8A8Simulation sim(*m, points, {}, options);
    sim.start_calibration();
    sim.quantize();
    std::map<std::string, at::Tensor> after;
    for (const auto& p : m->named_parameters()) after[p.key()] = p.value().detach().clone();
    for (const auto& e : sim.weight_errors()) errors[e.name] = e;
    return after;  // the simulation restores the float weights when it goes
  };
  const auto fc1 = "model.decoder.layers.0.fc1.weight", norm = "model.decoder.layers.0.final_layer_norm.weight";
  ASSERT_TRUE(before.count(fc1) && before.count(norm));
  const auto per_channel = weights_after(true, 4);
  const auto channel_error = errors.at(fc1);
  const auto per_tensor = weights_after(false, 4);
  // The recorded error of a weight is the relative change quantize() made to it.
  const auto relative = [&](const at::Tensor& after) {
    return ((after - before[fc1]).norm() / before[fc1].norm()).item<double>();
  };
  EXPECT_NEAR(channel_error.relative_error, relative(per_channel.at(fc1)), 1e-6);
  EXPECT_NEAR(errors.at(fc1).relative_error, relative(per_tensor.at(fc1)), 1e-6);
  EXPECT_NEAR(errors.at(fc1).max_abs, before[fc1].abs().max().item<double>(), 1e-7);
  EXPECT_NEAR(errors.at(fc1).rms, before[fc1].square().mean().sqrt().item<double>(), 1e-7);
  EXPECT_EQ(errors.at(norm).relative_error, 0.0);  // LayerNorm gammas start at 1: on the grid
  for (int64_t r = 0; r < before[fc1].size(0); ++r)
    EXPECT_TRUE(at::allclose(per_channel.at(fc1)[r], fake_quant_sym(before[fc1][r], 4), 1e-6, 1e-7)) << "row " << r;
  EXPECT_TRUE(at::equal(per_channel.at(norm), fake_quant_sym(before[norm], 4)));
  EXPECT_TRUE(at::equal(per_tensor.at(fc1), fake_quant_sym(before[fc1], 4)));
  EXPECT_LT(channel_error.relative_error, errors.at(fc1).relative_error);
  for (const auto& p : m->named_parameters()) EXPECT_TRUE(at::equal(p.value(), before[p.key()])) << p.key();
}

// Weights kept in float stay exactly as they were, are recorded with no error, and the others are quantized as before.
TEST(W8A8, WeightsKeptInFloatStayExact) {
  at::manual_seed(0);
  TinyWithPoints tiny_model;
  auto& [m, points] = tiny_model;
  const auto fc1 = m->named_parameters()["model.decoder.layers.0.fc1.weight"].detach().clone();
  const auto fc2 = m->named_parameters()["model.decoder.layers.0.fc2.weight"].detach().clone();
  analysis::W8A8Options options;
  options.keep_float = [](const std::string&) { return true; };
  options.keep_float_weights = [](const std::string& module) { return module.ends_with(".fc1"); };
  options.weight_bits = 4;
  analysis::W8A8Simulation sim(*m, points, {}, options);
  sim.start_calibration();
  sim.quantize();
  EXPECT_TRUE(at::equal(m->named_parameters()["model.decoder.layers.0.fc1.weight"], fc1));
  EXPECT_TRUE(at::equal(m->named_parameters()["model.decoder.layers.0.fc2.weight"], fake_quant_sym(fc2, 4)));
  int kept = 0;
  for (const auto& e : sim.weight_errors()) {
    EXPECT_EQ(e.kept_float, e.name.ends_with(".fc1.weight")) << e.name;
    if (!e.kept_float) continue;
    EXPECT_EQ(e.relative_error, 0.0);
    ++kept;
  }
  int layers = 0;
  for (const auto& p : m->named_parameters()) layers += p.key().ends_with(".fc1.weight");
  EXPECT_EQ(kept, layers);  // every layer's fc1
  sim.restore();
  EXPECT_TRUE(at::equal(m->named_parameters()["model.decoder.layers.0.fc2.weight"], fc2));
}

// A lookup table is a weight: listed with the error of its own quantization, and kept in float by its point's name,
// when its rows pass unchanged (the same model as a simulation that was given no lookups).
TEST(W8A8, LookupTablesAreListedAndCanStayFloat) {
  at::manual_seed(0);
  TinyWithPoints tiny_model;
  auto& [m, points] = tiny_model;
  const auto x = ids(4, 12);
  const auto table = m->named_parameters()["model.decoder.embed_tokens.weight"];
  const auto quantized = [&](bool with_lookup, bool keep_table) {
    analysis::W8A8Options options;
    options.keep_float = [](const std::string&) { return true; };  // weights only
    if (keep_table) options.keep_float_weights = [](const std::string& name) { return name.ends_with("embed_tokens"); };
    options.weight_bits = 4;
    std::map<std::string, at::Tensor> lookups;
    if (with_lookup) lookups["model.decoder.embed_tokens"] = table;
    analysis::W8A8Simulation sim(*m, points, lookups, options);
    sim.start_calibration();
    sim.quantize();
    return std::pair{m->forward(x), sim.weight_errors()};
  };
  const auto [no_lookup, no_lookup_errors] = quantized(false, false);
  const auto [on_grid, errors] = quantized(true, false);
  const auto [kept, kept_errors] = quantized(true, true);
  ASSERT_EQ(errors.size(), no_lookup_errors.size() + 1);
  EXPECT_EQ(errors[0].name, "model.decoder.embed_tokens.weight");
  const auto t = table.detach();
  EXPECT_NEAR(errors[0].relative_error, ((fake_quant_sym(t, 4) - t).norm() / t.norm()).item<double>(), 1e-7);
  EXPECT_GT(errors[0].relative_error, 0.01);
  EXPECT_NEAR(errors[0].max_abs, t.abs().max().item<double>(), 1e-7);
  EXPECT_FALSE(errors[0].kept_float);
  EXPECT_TRUE(errors[0].lookup);
  EXPECT_FALSE(errors[1].lookup);  // a Linear or LayerNorm weight
  EXPECT_FALSE(at::equal(on_grid, no_lookup));
  EXPECT_TRUE(kept_errors[0].kept_float);
  EXPECT_EQ(kept_errors[0].relative_error, 0.0);
  EXPECT_TRUE(at::equal(kept, no_lookup));
}

// Tables per row: a looked-up row is quantized on its own row's grid (fake_quant_sym of that row alone, as a row-wise
// quantized table would hold it), and the table's recorded error is that of the row-wise table, below one scale's.
TEST(W8A8, TablesPerRowQuantizeEachLookedUpRowOnItsRowsGrid) {
  at::manual_seed(0);
  auto points = std::make_shared<nn::ActivationPoints>();
  torch::nn::Linear unused(2, 2);
  const auto table = at::randn({16, 8}) * at::linspace(0.1, 3.0, 16).unsqueeze(1);  // rows of unequal size
  const auto rows = at::randint(16, {3, 5}, at::kLong);
  const auto error_and_rows = [&](bool per_row) {
    analysis::W8A8Options options;
    options.weight_bits = 4;
    options.per_row_tables = per_row;
    analysis::W8A8Simulation sim(*unused, points, {{"table", table}}, options);
    sim.start_calibration();
    sim.quantize();
    return std::pair{sim.weight_errors()[0].relative_error, points->pass("table", at::embedding(table, rows))};
  };
  const auto [row_error, looked_up] = error_and_rows(true);
  std::vector<at::Tensor> oracle_rows;
  for (int64_t r = 0; r < table.size(0); ++r) oracle_rows.push_back(fake_quant_sym(table[r], 4));
  const auto oracle = at::stack(oracle_rows);
  EXPECT_TRUE(at::allclose(looked_up, at::embedding(oracle, rows), 1e-6, 1e-7));
  EXPECT_NEAR(row_error, ((oracle - table).norm() / table.norm()).item<double>(), 1e-6);
  const auto [tensor_error, on_one_grid] = error_and_rows(false);
  EXPECT_TRUE(at::allclose(on_one_grid, at::embedding(fake_quant_sym(table, 4), rows), 1e-6, 1e-7));
  EXPECT_LT(row_error, tensor_error);
}

TEST(HalfPrecision, RoundsParametersAndPointsThenRestores) {
  at::manual_seed(0);
  TinyWithPoints tiny_model;
  auto& [m, points] = tiny_model;
  const auto x = ids(2, 8);
  const auto fp32 = m->forward(x);
  for (const auto type : {at::kHalf, at::kBFloat16}) {
    {
      analysis::HalfPrecisionEmulation half(*m, points, type);
      for (const auto& p : m->parameters()) EXPECT_TRUE(at::equal(p, p.to(type).to(at::kFloat)));
      std::vector<at::Tensor> seen;
      points->add_observer([&](const std::string&, const at::Tensor& t) { seen.push_back(t); });
      const auto y = m->forward(x);
      points->clear();
      EXPECT_FALSE(at::equal(y, fp32));
      EXPECT_LT((y - fp32).abs().max().item<double>(), type == at::kHalf ? 0.01 : 0.1);
      EXPECT_THROW(analysis::HalfPrecisionEmulation(*m, points, at::kFloat), c10::Error);
    }
    EXPECT_TRUE(at::equal(m->forward(x), fp32));
  }
}

TEST(HalfPrecision, NativeCastsTheModelThenRestoresItExactly) {
  at::manual_seed(0);
  models::OptForCausalLM m(tiny());
  m->eval();
  m->register_buffer("step_counter", at::arange(3, at::kLong));  // an integer buffer must keep its type
  const auto x = ids(2, 8);
  torch::NoGradGuard no_grad;
  const auto fp32 = m->forward(x);
  std::vector<at::Tensor> originals;
  for (const auto& p : m->parameters()) originals.push_back(p.clone());
  for (const auto type : {at::kHalf, at::kBFloat16}) {
    {
      analysis::NativeHalfPrecision half(*m, type, at::kCPU);
      for (const auto& p : m->parameters()) EXPECT_EQ(p.scalar_type(), type);
      EXPECT_EQ(m->named_buffers()["step_counter"].scalar_type(), at::kLong);
      EXPECT_EQ(half.input(x).scalar_type(), at::kLong);  // token ids stay ids
      EXPECT_EQ(half.input(at::ones({2})).scalar_type(), type);
      const auto y = m->forward(half.input(x));
      EXPECT_EQ(y.scalar_type(), type);
      // Half arithmetic: close to float32 (logits of order 1; float16 keeps 11 bits, bfloat16 8).
      const double err = (y.to(at::kFloat) - fp32).abs().max().item<double>();
      EXPECT_GT(err, 0.0);
      EXPECT_LT(err, type == at::kHalf ? 0.02 : 0.15);
      EXPECT_THROW(analysis::NativeHalfPrecision(*m, at::kFloat, at::kCPU), c10::Error);
    }
    const auto params = m->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_EQ(params[i].scalar_type(), at::kFloat);
      EXPECT_TRUE(at::equal(params[i], originals[i]));  // the float32 values, not a round trip through half
    }
    EXPECT_TRUE(at::equal(m->forward(x), fp32));
  }
}

TEST(OutlierPoints, OptPresetSelectsThePapersHooks) {
  using analysis::OutlierRows;
  EXPECT_EQ(analysis::opt_outlier_rows("model.decoder.layers.11"), OutlierRows::kPerSample);
  EXPECT_EQ(analysis::opt_outlier_rows("model.decoder.layers.3.self_attn.out_proj"), OutlierRows::kPerSample);
  EXPECT_EQ(analysis::opt_outlier_rows("model.decoder.layers.3.self_attn_layer_norm"), OutlierRows::kPerSample);
  EXPECT_EQ(analysis::opt_outlier_rows("model.decoder.final_layer_norm"), OutlierRows::kPerSample);
  EXPECT_EQ(analysis::opt_outlier_rows("model.decoder.layers.3.fc2"), OutlierRows::kPerToken);
  EXPECT_EQ(analysis::opt_outlier_rows("model.decoder.layers.3.final_layer_norm"), OutlierRows::kPerToken);
  EXPECT_EQ(analysis::opt_outlier_rows("model.decoder.layers.3.fc1"), OutlierRows::kSkip);
  EXPECT_EQ(analysis::opt_outlier_rows("model.decoder.embeddings"), OutlierRows::kSkip);

  analysis::OutlierStats stats;
  const auto observe = analysis::outlier_observer(stats, analysis::opt_outlier_rows);
  observe("model.decoder.layers.0.fc2", at::randn({2, 5, 4}));
  observe("model.decoder.layers.0", at::randn({2, 5, 4}));
  observe("model.decoder.layers.0.fc1", at::randn({2, 5, 4}));
  const auto modules = stats.modules();
  ASSERT_EQ(modules.size(), 2u);
  EXPECT_EQ(modules[0].rows, 10);  // per token
  EXPECT_EQ(modules[1].rows, 2);   // per sample
}

TEST(Text, GutenbergStripping) {
  const std::string raw =
      "\xEF\xBB\xBFThe Project Gutenberg eBook\r\nlicense\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\n"
      "Body line one.\r\nBody line two.\r\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nfooter\r\n";
  EXPECT_EQ(data::strip_gutenberg(raw), "Body line one.\nBody line two.\n");
  EXPECT_EQ(data::strip_gutenberg("plain\r\ntext"), "plain\ntext");
  const auto t = data::byte_tokens("a\xff");
  EXPECT_EQ(t.scalar_type(), at::kLong);
  EXPECT_EQ(t[0].item<int64_t>(), 97);
  EXPECT_EQ(t[1].item<int64_t>(), 255);
  EXPECT_THROW(data::read_books("/nonexistent"), c10::Error);
}

TEST(Text, HeldOutChunksSplitATokenStreamIntoWholeChunksInOrder) {
  // 105 chunks of 10 tokens (value = position), 10% held out: chunks 9, 19, ..., 99, whose values end in 9x.
  const auto tokens = at::arange(1050, at::kLong);
  const auto [train, held] = data::split_held_out_chunks(tokens, 10, 0.1);
  const auto is_held = tokens.div(10, "floor").remainder(10).eq(9).logical_and(tokens.lt(1000));
  EXPECT_TRUE(held.equal(tokens.masked_select(is_held)));
  EXPECT_TRUE(train.equal(tokens.masked_select(is_held.logical_not())));
  const auto [all, none] = data::split_held_out_chunks(tokens, 7, 0.0);  // 7 does not divide 1050 - 1: a short tail
  EXPECT_TRUE(all.equal(tokens));
  EXPECT_EQ(none.numel(), 0);
  EXPECT_THROW(data::split_held_out_chunks(tokens.view({2, -1}), 10, 0.1), c10::Error);
  EXPECT_THROW(data::split_held_out_chunks(tokens, 0, 0.1), c10::Error);
}

TEST(LmTask, HeldOutWindowsAreSpreadEvenlyOverTheHeldOutChunks) {
  const auto dir = testing::shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared/data";
  const nlohmann::json config = {{"task", "lm"},
                                 {"data", {{"seq", 32}, {"held_out", 0.01}}},
                                 {"model", {{"d_model", 16}, {"layers", 1}, {"heads", 2}, {"d_ff", 32}}},
                                 {"train", {{"batch", 4}}},
                                 {"eval", {{"batches", 2}}}};
  const auto task = experiment::make_task(experiment::ConfigReader(config, "test"), dir);
  const auto& books = task->extra_evaluations().at("books");
  ASSERT_EQ(books.size(), 2u);
  // Windows of 32 bytes (BOS + 31 inputs, 32 targets) at an even stride over all the held-out chunks of 100 windows.
  const auto held = data::split_held_out_chunks(data::byte_tokens(data::read_books(dir + "/text/books")), 3200, 0.01)
                        .second;
  const auto windows = held.slice(0, 0, held.size(0) / 32 * 32).view({-1, 32});
  const int64_t stride = windows.size(0) / 8;
  ASSERT_GT(stride, 100);  // spread over many chunks, not the first few
  for (int64_t i = 0; i < 8; ++i)
    EXPECT_TRUE(books[i / 4].target.view({4, 32})[i % 4].equal(windows[i * stride])) << "window " << i;
  EXPECT_TRUE((books[0].input.select(1, 0) == 256).all().item<bool>());  // the byte BOS
}

// eval.batches: all takes every whole batch of windows the evaluation text holds (here Tiny Shakespeare, whose raw
// bytes are the oracle) and of the held-out books, with the held-out windows consecutive (stride 1).
TEST(LmTask, EvalBatchesAllCoversTheWholeText) {
  const auto dir = testing::shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared/data";
  const nlohmann::json data = {{"seq", 256}, {"held_out", 0.01}, {"eval_text", "text/tinyshakespeare.txt"}};
  const nlohmann::json config = {{"task", "lm"},
                                 {"data", data},
                                 {"model", {{"d_model", 16}, {"layers", 1}, {"heads", 2}, {"d_ff", 32}}},
                                 {"train", {{"batch", 64}}},
                                 {"eval", {{"batches", "all"}}}};
  const auto task = experiment::make_task(experiment::ConfigReader(config, "test"), dir);
  EXPECT_EQ(task->resolved()["eval"]["batches"], "all");
  const auto path = dir + "/text/tinyshakespeare.txt";
  const auto bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  const auto& text = task->eval_batches();
  ASSERT_EQ(static_cast<int64_t>(text.size()), bytes / 256 / 64);
  std::ifstream file(path, std::ios::binary);
  std::string last(256, '\0');
  file.seekg(static_cast<std::streamoff>(text.size() * 64 * 256 - 256));
  ASSERT_TRUE(file.read(last.data(), 256));
  const auto target = text.back().target.view({64, 256})[63];
  for (int64_t k = 0; k < 256; ++k) ASSERT_EQ(target[k].item<int64_t>(), static_cast<unsigned char>(last[k])) << k;
  const auto held = data::split_held_out_chunks(data::byte_tokens(data::read_books(dir + "/text/books")), 25600, 0.01)
                        .second;
  const auto& books = task->extra_evaluations().at("books");
  ASSERT_EQ(static_cast<int64_t>(books.size()), held.size(0) / 256 / 64);
  const auto end = static_cast<int64_t>(books.size()) * 64 * 256;
  EXPECT_TRUE(books.back().target.view({64, 256})[63].equal(held.slice(0, end - 256, end)));
}

// data.eval_text: the evaluation windows come from that file (here one without CRLF or a Gutenberg header, so its raw
// bytes are the oracle), the resolved config and the description name it, and a missing file is an error.
TEST(LmTask, EvalTextReplacesWikiText) {
  const auto dir = testing::shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared/data";
  nlohmann::json config = {{"task", "lm"},
                           {"data", {{"seq", 32}, {"held_out", 0}, {"eval_text", "text/tinyshakespeare.txt"}}},
                           {"model", {{"d_model", 16}, {"layers", 1}, {"heads", 2}, {"d_ff", 32}}},
                           {"train", {{"batch", 4}}},
                           {"eval", {{"batches", 2}}}};
  const auto task = experiment::make_task(experiment::ConfigReader(config, "test"), dir);
  std::ifstream file(dir + "/text/tinyshakespeare.txt", std::ios::binary);
  std::string text(8 * 32, '\0');
  ASSERT_TRUE(file.read(text.data(), static_cast<std::streamsize>(text.size())));
  ASSERT_EQ(task->eval_batches().size(), 2u);
  for (int64_t i = 0; i < 8; ++i) {  // windows of 32 bytes in order: BOS + 31 inputs, 32 targets
    const auto target = task->eval_batches()[i / 4].target.view({4, 32})[i % 4];
    for (int64_t k = 0; k < 32; ++k)
      ASSERT_EQ(target[k].item<int64_t>(), static_cast<unsigned char>(text[i * 32 + k])) << "window " << i << ", " << k;
  }
  EXPECT_EQ(task->resolved()["data"]["eval_text"], "text/tinyshakespeare.txt");
  EXPECT_NE(task->description().find("books -> tinyshakespeare.txt"), std::string::npos) << task->description();
  config["data"].erase("eval_text");
  const auto wikitext = experiment::make_task(experiment::ConfigReader(config, "test"), dir);
  EXPECT_FALSE(wikitext->resolved()["data"].contains("eval_text"));  // configs made before the key still match
  EXPECT_NE(wikitext->description().find("books -> WikiText-2 valid"), std::string::npos);
  config["data"]["eval_text"] = "text/no-such-file.txt";
  try {
    experiment::make_task(experiment::ConfigReader(config, "test"), dir);
    FAIL() << "a missing eval_text was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-file.txt"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace outeffhop
