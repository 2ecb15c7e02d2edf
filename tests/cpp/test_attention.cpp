// attention / attention_lse against the zero-key float64 oracle, over masks, causal, sinks and hostile rows.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "outeffhop/attention.h"
#include "outeffhop/softmax.h"
#include "test_util.h"

namespace outeffhop {
namespace {

using namespace outeffhop::testing;

enum class MaskKind { kNone, kBool, kAdditive, kBoolBroadcast };

struct AttnCase {
  int64_t B, H, Lq, Lk, D, Dv;
  double n;
  bool causal;
  MaskKind mask;
  bool sink;
  bool noncontiguous;
};

std::optional<at::Tensor> make_mask(MaskKind kind, const AttnCase& c) {
  switch (kind) {
    case MaskKind::kNone:
      return std::nullopt;
    case MaskKind::kBool:
      return at::rand({c.B, c.H, c.Lq, c.Lk}) > 0.3;
    case MaskKind::kAdditive:
      return at::randn({c.B, 1, c.Lq, c.Lk}, at::kDouble);
    case MaskKind::kBoolBroadcast:  // key padding mask: B x 1 x 1 x Lk
      return at::rand({c.B, 1, 1, c.Lk}) > 0.2;
  }
  return std::nullopt;
}

void PrintTo(const AttnCase& c, std::ostream* os) {
  *os << "B" << c.B << " H" << c.H << " Lq" << c.Lq << " Lk" << c.Lk << " D" << c.D << " Dv" << c.Dv << " n" << c.n
      << (c.causal ? " causal" : "") << " mask" << static_cast<int>(c.mask) << (c.sink ? " sink" : "");
}

class AttentionTable : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionTable, MatchesZeroKeyOracleInValueAndGradient) {
  const auto& c = GetParam();
  at::manual_seed(11);
  auto q = at::randn({c.B, c.H, c.Lq, c.D}, at::kDouble);
  auto k = at::randn({c.B, c.H, c.Lk, c.D}, at::kDouble);
  auto v = at::randn({c.B, c.H, c.Lk, c.Dv}, at::kDouble);
  if (c.noncontiguous) {  // same values, strided storage
    q = q.transpose(1, 2).contiguous().transpose(1, 2);
    k = k.transpose(2, 3).contiguous().transpose(2, 3);
  }
  AttentionOptions opt;
  opt.n = c.n;
  opt.causal = c.causal;
  opt.attn_mask = make_mask(c.mask, c);
  if (opt.attn_mask && opt.attn_mask->scalar_type() != at::kBool) opt.attn_mask = opt.attn_mask->to(at::kDouble);
  if (c.sink) opt.sink = at::randn({c.H}, at::kDouble);
  const auto [out, lse] = attention_lse(q, k, v, opt);
  const auto [ref_out, ref_lse] = reference::attention_via_zero_key(q, k, v, opt);
  EXPECT_LE(max_abs_diff(out, ref_out), kTolF64 * 100);
  const auto finite = ref_lse.isfinite();
  EXPECT_TRUE(at::equal(lse.isfinite(), finite));
  EXPECT_LE(max_abs_diff(lse.masked_select(finite), ref_lse.masked_select(finite)), kTolF64 * 100);
  EXPECT_FALSE(out.isnan().any().item<bool>());

  const auto w = at::randn_like(out);
  auto loss_q = [&](const at::Tensor& t) { return (attention(t, k, v, opt) * w).sum(); };
  auto loss_k = [&](const at::Tensor& t) { return (attention(q, t, v, opt) * w).sum(); };
  auto loss_v = [&](const at::Tensor& t) { return (attention(q, k, t, opt) * w).sum(); };
  EXPECT_LE(max_abs_diff(autograd_grad(loss_q, q), numeric_grad(loss_q, q)), kTolFiniteDiff);
  EXPECT_LE(max_abs_diff(autograd_grad(loss_k, k), numeric_grad(loss_k, k)), kTolFiniteDiff);
  EXPECT_LE(max_abs_diff(autograd_grad(loss_v, v), numeric_grad(loss_v, v)), kTolFiniteDiff);
  if (c.sink) {
    auto loss_s = [&](const at::Tensor& s) {
      auto o = opt;
      o.sink = s;
      return (attention(q, k, v, o) * w).sum();
    };
    EXPECT_LE(max_abs_diff(autograd_grad(loss_s, *opt.sink), numeric_grad(loss_s, *opt.sink)), kTolFiniteDiff);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AttentionTable,
    ::testing::Values(AttnCase{1, 1, 1, 1, 1, 1, 1.0, false, MaskKind::kNone, false, false},  // L = 1, D = 1
                      AttnCase{2, 3, 5, 7, 3, 2, 1.0, false, MaskKind::kNone, false, false},  // odd dims, Dv != D
                      AttnCase{1, 2, 6, 6, 4, 4, 0.0, true, MaskKind::kNone, false, false},   // vanilla causal
                      AttnCase{1, 2, 3, 7, 5, 5, 1.0, true, MaskKind::kNone, false, true},    // causal, Lq < Lk
                      AttnCase{2, 2, 7, 3, 4, 4, 1.0, true, MaskKind::kNone, false, false},   // causal, Lq > Lk
                      AttnCase{2, 2, 4, 5, 3, 3, 1.0, false, MaskKind::kBool, false, false},
                      AttnCase{2, 2, 4, 5, 3, 3, 0.0, false, MaskKind::kBool, false, false},  // some all-masked rows
                      AttnCase{2, 1, 4, 6, 3, 3, 2.5, false, MaskKind::kAdditive, false, true},
                      AttnCase{3, 2, 4, 6, 3, 3, 1.0, false, MaskKind::kBoolBroadcast, false, false},
                      AttnCase{2, 3, 4, 5, 3, 3, 1.0, true, MaskKind::kBool, true, false}),  // sink + causal
    [](const ::testing::TestParamInfo<AttnCase>& info) {
      const auto& c = info.param;
      return "case" + std::to_string(info.index) + "_L" + std::to_string(c.Lq) + "x" + std::to_string(c.Lk) +
             (c.causal ? "_causal" : "") + (c.mask != MaskKind::kNone ? "_mask" : "") + (c.sink ? "_sink" : "");
    });

TEST(Attention, FullyMaskedRowsGiveZerosAndFiniteGradients) {
  const auto q = at::randn({1, 2, 3, 4}, at::kFloat);
  const auto k = at::randn({1, 2, 5, 4}, at::kFloat);
  const auto v = at::randn({1, 2, 5, 4}, at::kFloat);
  AttentionOptions opt;
  auto mask = at::ones({1, 2, 3, 5}, at::kBool);
  mask.select(2, 1).fill_(false);  // query 1 sees nothing
  opt.attn_mask = mask;
  for (const double n : {0.0, 1.0}) {
    opt.n = n;
    const auto [out, lse] = attention_lse(q, k, v, opt);
    EXPECT_EQ(out.select(2, 1).abs().max().item<double>(), 0.0);
    EXPECT_EQ(lse.select(2, 1).isinf().all().item<bool>(), n == 0);  // log(n + 0)
    const auto g = autograd_grad([&](const at::Tensor& t) { return attention(t, k, v, opt).pow(2).sum(); }, q);
    EXPECT_TRUE(g.isfinite().all().item<bool>());
  }
}

TEST(Attention, ExtremeLogitsStayFinite) {
  // Scores of order 1e4 and of order -1e4 (all far below log n): no NaN, matches the oracle.
  const auto q = at::full({1, 1, 2, 2}, 100.0, at::kFloat);
  auto k = at::full({1, 1, 3, 2}, 100.0, at::kFloat);
  k.select(2, 1).fill_(-100.0);
  const auto v = at::randn({1, 1, 3, 2}, at::kFloat);
  AttentionOptions opt;
  opt.scale = 0.5;
  for (const double sign : {1.0, -1.0}) {
    const auto [out, lse] = attention_lse(q * sign, k, v, opt);
    const auto [ref_out, ref_lse] = reference::attention_via_zero_key(q * sign, k, v, opt);
    EXPECT_LE(max_abs_diff(out, ref_out), kTolF32);
    EXPECT_TRUE(lse.isfinite().all().item<bool>());
  }
}

TEST(Attention, SoftmaxOneEqualsVanillaWithExplicitZeroKeyAndSinkZero) {
  // softmax_1 attention == vanilla attention over [K; 0], [V; 0]: built here with the op itself at n = 0.
  const auto q = at::randn({2, 3, 4, 5}, at::kDouble);
  const auto k = at::randn({2, 3, 6, 5}, at::kDouble);
  const auto v = at::randn({2, 3, 6, 5}, at::kDouble);
  AttentionOptions vanilla;
  vanilla.n = 0;
  const auto ext = attention(q, at::cat({k, at::zeros({2, 3, 1, 5}, at::kDouble)}, 2),
                             at::cat({v, at::zeros({2, 3, 1, 5}, at::kDouble)}, 2), vanilla);
  EXPECT_LE(max_abs_diff(attention(q, k, v), ext), kTolF64);
  AttentionOptions sink0;
  sink0.sink = at::zeros({3}, at::kDouble);  // exp(0) = 1 = n
  EXPECT_LE(max_abs_diff(attention(q, k, v, sink0), ext), kTolF64);
}

TEST(Attention, RejectsBadShapesWithClearMessages) {
  const auto q = at::randn({1, 2, 3, 4});
  const auto k = at::randn({1, 2, 5, 4});
  const auto v = at::randn({1, 2, 5, 4});
  EXPECT_THROW(attention(q.view({2, 3, 4}), k, v), c10::Error);               // rank
  EXPECT_THROW(attention(q, at::randn({1, 2, 5, 3}), v), c10::Error);         // D mismatch
  EXPECT_THROW(attention(q, k, at::randn({1, 2, 4, 4})), c10::Error);         // Lk mismatch
  EXPECT_THROW(attention(q, at::randn({1, 2, 0, 4}), at::randn({1, 2, 0, 4})), c10::Error);  // empty keys
  AttentionOptions bad_mask;
  bad_mask.attn_mask = at::ones({1, 2, 3, 4}, at::kBool);
  EXPECT_THROW(attention(q, k, v, bad_mask), c10::Error);
  AttentionOptions bad_sink;
  bad_sink.sink = at::zeros({3});
  EXPECT_THROW(attention(q, k, v, bad_sink), c10::Error);
  AttentionOptions bad_n;
  bad_n.n = -1;
  try {
    attention(q, k, v, bad_n);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention: n (the no-op mass)"), std::string::npos);
  }
}

}  // namespace
}  // namespace outeffhop
