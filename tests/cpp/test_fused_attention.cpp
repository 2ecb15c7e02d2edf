// The fused CPU attention kernels (tiled and scalar reference) against the float64 zero-key oracle and the composite:
// one table over shapes, head dims, views, masks, causal, n, sinks and hostile logits; values, lse and gradients.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/composites.h"
#include "ops/attention_fused.h"
#include "outeffhop/attention.h"
#include "test_util.h"

namespace outeffhop {
namespace {

using namespace outeffhop::testing;
using detail::AttentionArgs;
using detail::AttentionKernel;

// float32 logits carry a rounding error of about 1e-7 of their magnitude (and of the dot products behind them);
// softmax turns an absolute logit error e into a relative probability error e. So the float32-vs-float64 tolerance
// grows with the largest |logit| of the case.
constexpr double kTolF32PerLogit = 2e-6;
// Gradients pass through two more float32 products (dO V^T, dS K): a few times the forward's error.
constexpr double kGradTolFactor = 20;

enum class Mask { kNone, kBool, kAdditive, kKeyPadding };

struct FusedCase {
  const char* name;
  int64_t B, H, Lq, Lk, D, Dv;
  double n;
  bool causal;
  Mask mask;
  bool sink;
  bool strided;          // q, k, v as views of B x L x H x D storage (the layout attention modules produce)
  double logit_scale;    // multiplies q: 1 for ordinary logits, ~1e4 for hostile ones
};

void PrintTo(const FusedCase& c, std::ostream* os) { *os << c.name; }

struct Inputs {
  at::Tensor q, k, v;
  AttentionOptions opt;
};

// float64 inputs for a case (callers convert); masks hide about 30% of the keys, some rows entirely.
Inputs make_inputs(const FusedCase& c) {
  at::manual_seed(1234);
  auto make = [&](int64_t L, int64_t D) {
    if (!c.strided) return at::randn({c.B, c.H, L, D}, at::kDouble);
    return at::randn({c.B, L, c.H, D}, at::kDouble).transpose(1, 2);  // non-contiguous B x H x L x D view
  };
  Inputs in{make(c.Lq, c.D) * c.logit_scale, make(c.Lk, c.D), make(c.Lk, c.Dv), {}};
  in.opt.n = c.n;
  in.opt.causal = c.causal;
  switch (c.mask) {
    case Mask::kNone:
      break;
    case Mask::kBool: {
      auto keep = at::rand({c.B, c.H, c.Lq, c.Lk}) > 0.3;
      keep.select(2, 0).fill_(false);  // an all-hidden row
      in.opt.attn_mask = keep;
      break;
    }
    case Mask::kAdditive:  // broadcast over heads; -inf entries hide keys
      in.opt.attn_mask = at::where(at::rand({c.B, 1, c.Lq, c.Lk}) > 0.2, at::randn({c.B, 1, c.Lq, c.Lk}) * 2,
                                   at::full({}, -INFINITY))
                             .to(at::kDouble);
      break;
    case Mask::kKeyPadding:
      in.opt.attn_mask = at::arange(c.Lk).view({1, 1, 1, c.Lk}) < at::randint(1, c.Lk + 1, {c.B, 1, 1, 1});
      break;
  }
  if (c.sink) in.opt.sink = at::randn({c.H}, at::kDouble) * 2;
  return in;
}

AttentionArgs args_for(const Inputs& in, at::ScalarType type) {
  AttentionArgs a;
  a.q = in.q.to(type), a.k = in.k.to(type), a.v = in.v.to(type);
  a.attn_mask = in.opt.attn_mask;
  if (a.attn_mask && a.attn_mask->scalar_type() != at::kBool) a.attn_mask = a.attn_mask->to(type);
  if (in.opt.sink) a.sink = in.opt.sink->to(type);
  a.n = in.opt.n, a.causal = in.opt.causal, a.scale = in.opt.scale;
  return a;
}

double max_abs_logit(const Inputs& in) {
  const auto s = at::matmul(in.q, in.k.transpose(-2, -1)) / std::sqrt(static_cast<double>(in.q.size(3)));
  return s.abs().max().item<double>();
}

class FusedAttentionTable : public ::testing::TestWithParam<FusedCase> {};

TEST_P(FusedAttentionTable, MatchesFloat64OracleAndReferenceKernel) {
  const auto& c = GetParam();
  const auto in = make_inputs(c);
  const auto [ref_out, ref_lse] = reference::attention_via_zero_key(in.q, in.k, in.v, in.opt);
  const double tol = kTolF32PerLogit * (1 + max_abs_logit(in));
  const auto args = args_for(in, at::kFloat);
  const auto tiled = detail::fused_attention_forward(args, AttentionKernel::kTiled);
  const auto scalar = detail::fused_attention_forward(args, AttentionKernel::kReference);
  for (const auto* f : {&tiled, &scalar}) {
    EXPECT_LE(max_abs_diff(f->out, ref_out), tol);
    const auto finite = ref_lse.isfinite();
    ASSERT_TRUE(at::equal(f->lse.isfinite(), finite));  // -inf exactly where the whole row is empty
    EXPECT_LE(max_abs_diff(f->lse.masked_select(finite), ref_lse.masked_select(finite)), tol);
  }
  // The same algorithm in float64 reaches the oracle to rounding.
  const auto tiled64 = detail::fused_attention_forward(args_for(in, at::kDouble), AttentionKernel::kTiled);
  EXPECT_LE(max_abs_diff(tiled64.out, ref_out), 1e3 * kTolF64 * (1 + max_abs_logit(in)));
}

TEST_P(FusedAttentionTable, GradientsMatchAutogradThroughTheOracle) {
  const auto& c = GetParam();
  const auto in = make_inputs(c);
  // Reference gradients: autograd through the float64 eager composite (matmul, softmax_n, matmul).
  auto q = in.q.detach().clone().requires_grad_(), k = in.k.detach().clone().requires_grad_();
  auto v = in.v.detach().clone().requires_grad_();
  auto opt = in.opt;
  if (opt.sink) opt.sink = opt.sink->detach().clone().requires_grad_();
  const auto [out, lse] = detail::attention_lse_composite(q, k, v, opt.attn_mask, opt.sink, opt.n, opt.causal, {});
  const auto grad_out = at::randn_like(out);
  // An empty row's lse is -inf and logsumexp's backward is NaN there: differentiate lse only when all are finite.
  const bool lse_finite = lse.isfinite().all().item<bool>();
  const auto grad_lse = lse_finite ? at::randn_like(lse) : at::zeros_like(lse);
  ((out * grad_out).sum() + (lse_finite ? (lse * grad_lse).sum() : at::zeros({}, at::kDouble))).backward();
  const double tol = kGradTolFactor * kTolF32PerLogit * (1 + max_abs_logit(in));

  const auto args = args_for(in, at::kFloat);
  for (const auto kernel : {AttentionKernel::kTiled, AttentionKernel::kReference}) {
    const auto f = detail::fused_attention_forward(args, kernel);
    const auto g =
        detail::fused_attention_backward(args, grad_out.to(at::kFloat), grad_lse.to(at::kFloat), f.out, f.lse, kernel);
    const double scale = 1 + q.grad().abs().max().item<double>() + k.grad().abs().max().item<double>();
    EXPECT_LE(max_abs_diff(g.q, q.grad()), tol * scale);
    EXPECT_LE(max_abs_diff(g.k, k.grad()), tol * scale);
    EXPECT_LE(max_abs_diff(g.v, v.grad()), tol * scale);
    EXPECT_TRUE(g.q.isfinite().all().item<bool>() && g.k.isfinite().all().item<bool>());
    if (c.sink) EXPECT_LE(max_abs_diff(g.sink, opt.sink->grad()), tol * scale);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FusedAttentionTable,
    ::testing::Values(
        // name, B, H, Lq, Lk, D, Dv, n, causal, mask, sink, strided, logit_scale
        FusedCase{"L1_D1", 1, 1, 1, 1, 1, 1, 1.0, false, Mask::kNone, false, false, 1},
        FusedCase{"D16_vanilla", 2, 2, 33, 40, 16, 16, 0.0, false, Mask::kNone, false, false, 1},
        FusedCase{"D59_n3p5", 1, 3, 70, 130, 59, 59, 3.5, false, Mask::kNone, false, false, 1},
        FusedCase{"D64_causal_long", 1, 2, 200, 300, 64, 64, 1.0, true, Mask::kNone, false, false, 1},
        FusedCase{"D64_causal_LqGtLk", 1, 2, 150, 90, 64, 64, 1.0, true, Mask::kNone, false, false, 1},
        FusedCase{"D111_Dv17", 1, 2, 65, 129, 111, 17, 1.0, false, Mask::kNone, false, false, 1},
        FusedCase{"D128_strided", 2, 2, 64, 128, 128, 128, 1.0, false, Mask::kNone, false, true, 1},
        FusedCase{"D256", 1, 1, 20, 140, 256, 256, 1.0, false, Mask::kNone, false, false, 1},
        FusedCase{"bool_mask_n0", 2, 2, 40, 150, 32, 32, 0.0, false, Mask::kBool, false, false, 1},
        FusedCase{"bool_mask_n1", 2, 2, 40, 150, 32, 32, 1.0, false, Mask::kBool, false, true, 1},
        FusedCase{"additive_mask_causal", 2, 3, 70, 70, 24, 24, 1.0, true, Mask::kAdditive, false, false, 1},
        FusedCase{"key_padding_sink", 3, 4, 50, 60, 32, 32, 1.0, false, Mask::kKeyPadding, true, false, 1},
        FusedCase{"sink_causal_strided", 2, 3, 130, 130, 64, 64, 1.0, true, Mask::kNone, true, true, 1},
        FusedCase{"hostile_1e4", 1, 2, 30, 50, 16, 16, 1.0, false, Mask::kNone, false, false, 1e4 / 4},
        FusedCase{"hostile_1e4_masked", 1, 2, 30, 50, 16, 16, 1.0, false, Mask::kBool, false, false, -1e4 / 4}),
    [](const ::testing::TestParamInfo<FusedCase>& info) { return std::string(info.param.name); });

TEST(FusedAttention, ClippedMatchesComposite) {
  at::manual_seed(7);
  const auto q = at::randn({2, 2, 70, 32}, at::kDouble) * 2, k = at::randn({2, 2, 150, 32}, at::kDouble);
  const auto v = at::randn({2, 2, 150, 24}, at::kDouble);
  const auto keep = at::rand({2, 1, 70, 150}) > 0.2;
  for (const auto& [gamma, eta, n] : {std::tuple{-0.025, 1.0, 0.0}, std::tuple{-0.025, 1.0, 1.0},
                                      std::tuple{0.01, 1.2, 1.0}}) {
    AttentionArgs a{q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), keep, {}, n, true, {}, true, gamma, eta};
    auto q64 = q.clone().requires_grad_(), k64 = k.clone().requires_grad_(), v64 = v.clone().requires_grad_();
    const auto ref = detail::clipped_attention_composite(q64, k64, v64, keep, {}, n, gamma, eta, true, {});
    const auto grad_out = at::randn_like(ref);
    (ref * grad_out).sum().backward();
    for (const auto kernel : {AttentionKernel::kTiled, AttentionKernel::kReference}) {
      const auto f = detail::fused_attention_forward(a, kernel);
      EXPECT_LE(max_abs_diff(f.out, ref), 1e-5) << "gamma " << gamma << " n " << n;
      const auto g = detail::fused_attention_backward(a, grad_out.to(at::kFloat), {}, f.out, f.lse, kernel);
      EXPECT_LE(max_abs_diff(g.q, q64.grad()), 1e-4);
      EXPECT_LE(max_abs_diff(g.k, k64.grad()), 1e-4);
      EXPECT_LE(max_abs_diff(g.v, v64.grad()), 1e-4);
    }
  }
}

TEST(FusedAttention, ClippedOpGradientsMatchFiniteDifferences) {
  at::manual_seed(8);
  const auto q = at::randn({1, 2, 5, 3}, at::kDouble), k = at::randn({1, 2, 6, 3}, at::kDouble);
  const auto v = at::randn({1, 2, 6, 3}, at::kDouble);
  AttentionOptions opt;
  opt.sink = at::randn({2}, at::kDouble);
  opt.causal = true;
  const auto w = at::randn({1, 2, 5, 3}, at::kDouble);
  auto loss_q = [&](const at::Tensor& t) { return (clipped_attention(t, k, v, -0.1, 1.1, opt) * w).sum(); };
  auto loss_s = [&](const at::Tensor& s) {
    auto o = opt;
    o.sink = s;
    return (clipped_attention(q, k, v, -0.1, 1.1, o) * w).sum();
  };
  EXPECT_LE(max_abs_diff(autograd_grad(loss_q, q), numeric_grad(loss_q, q)), kTolFiniteDiff);
  EXPECT_LE(max_abs_diff(autograd_grad(loss_s, *opt.sink), numeric_grad(loss_s, *opt.sink)), kTolFiniteDiff);
}

TEST(FusedAttention, OpUsesFusedKernelOnCpuAndCompositeWhenMaskNeedsGradient) {
  const auto q = at::randn({1, 2, 9, 8}), k = at::randn({1, 2, 11, 8}), v = at::randn({1, 2, 11, 8});
  AttentionOptions opt;
  opt.attn_mask = at::randn({1, 1, 9, 11}).requires_grad_();  // a learned bias: only the composite differentiates it
  const auto out = attention(q, k, v, opt);
  out.sum().backward();
  ASSERT_TRUE(opt.attn_mask->grad().defined());
  EXPECT_GT(opt.attn_mask->grad().abs().sum().item<double>(), 0);
  AttentionOptions plain;
  plain.attn_mask = opt.attn_mask->detach();
  EXPECT_LE(max_abs_diff(attention(q, k, v, plain), out), kTolF32);
}

TEST(FusedAttention, Bfloat16InputsComputeInFloat32) {
  const auto q = at::randn({1, 2, 40, 32}), k = at::randn({1, 2, 50, 32}), v = at::randn({1, 2, 50, 32});
  const auto out = attention(q.to(at::kBFloat16), k.to(at::kBFloat16), v.to(at::kBFloat16));
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  const auto ref = std::get<0>(reference::attention_via_zero_key(q.to(at::kBFloat16), k.to(at::kBFloat16),
                                                                   v.to(at::kBFloat16)));
  EXPECT_LE(max_abs_diff(out, ref), kTolBF16);
}

// Clipped attention on hostile input, for gamma < 0 (the usual) and gamma > 0 (where a hidden key must still give 0,
// not gamma): a query that sees nothing gives zeros with finite gradients, logits of order +-1e4 match the float64
// composite, and a NaN stays in its query's row.
TEST(FusedAttention, ClippedHandlesEmptyRowsHugeLogitsAndNan) {
  at::manual_seed(9);
  const auto k = at::randn({1, 2, 20, 8}), v = at::randn({1, 2, 20, 8});
  auto mask = at::ones({1, 2, 3, 20}, at::kBool);
  mask.select(2, 1).fill_(false);  // query 1 sees nothing
  for (const double gamma : {-0.1, 0.05})
    for (const double n : {0.0, 1.0}) {
      AttentionOptions opt;
      opt.attn_mask = mask;
      opt.n = n;
      for (const double size : {1.0, 1e3, -1e3}) {  // |logits| up to ~1e4 at 1e3
        const auto q = at::randn({1, 2, 3, 8}) * size;
        const auto out = clipped_attention(q, k, v, gamma, 1.0, opt);
        const auto ref = detail::clipped_attention_composite(q.to(at::kDouble), k.to(at::kDouble),
                                                             v.to(at::kDouble), mask, {}, n, gamma, 1.0, false, {});
        const double max_logit = (at::matmul(q, k.transpose(-2, -1)) / std::sqrt(8.0)).abs().max().item<double>();
        EXPECT_LE(max_abs_diff(out, ref), kTolF32PerLogit * (1 + max_logit))
            << "gamma " << gamma << " n " << n << " size " << size;
        EXPECT_EQ(out.select(2, 1).abs().max().item<double>(), 0.0);
        const auto g =
            autograd_grad([&](const at::Tensor& t) { return clipped_attention(t, k, v, gamma, 1.0, opt).pow(2).sum(); },
                          q);
        EXPECT_TRUE(g.isfinite().all().item<bool>()) << "gamma " << gamma << " n " << n << " size " << size;
      }
      auto q = at::randn({1, 2, 3, 8});
      q[0][0][2][3] = NAN;
      const auto out = clipped_attention(q, k, v, gamma, 1.0, opt);
      EXPECT_TRUE(out[0][0][2].isnan().all().item<bool>());
      EXPECT_TRUE(out[0][0][0].isfinite().all().item<bool>());
      EXPECT_TRUE(out[0][1].isfinite().all().item<bool>());
    }
}

TEST(FusedAttention, NanInAQueryPoisonsOnlyItsRow) {
  auto q = at::randn({1, 1, 4, 8});
  q[0][0][2][3] = NAN;
  const auto out = attention(q, at::randn({1, 1, 5, 8}), at::randn({1, 1, 5, 8}));
  EXPECT_TRUE(out.select(2, 2).isnan().all().item<bool>());
  EXPECT_TRUE(out.select(2, 1).isfinite().all().item<bool>());
}

}  // namespace
}  // namespace outeffhop
