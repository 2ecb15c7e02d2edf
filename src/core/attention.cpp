// Attention with the softmax family as a composition of ATen ops and softmax_n (materialises Lq x Lk scores; the
// fused kernel is separate work). Also the zero-key oracle.
#include "outeffhop/attention.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>

#include "attention_checks.h"
#include "checks.h"
#include "composites.h"
#include "outeffhop/softmax.h"

namespace outeffhop {
namespace detail {
namespace {
constexpr const char* kOp = "attention";
}

void check_attention_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& sink, double n,
                          std::optional<double> scale) {
  detail::check_floating(q, kOp, "q");
  detail::check_floating(k, kOp, "k");
  detail::check_floating(v, kOp, "v");
  detail::check_rank(q, 4, kOp, "q", "B x H x Lq x D");
  detail::check_rank(k, 4, kOp, "k", "B x H x Lk x D");
  detail::check_rank(v, 4, kOp, "v", "B x H x Lk x Dv");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "attention: q, k, v must share a dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ",
              v.scalar_type());
  TORCH_CHECK(k.device() == q.device() && v.device() == q.device(), "attention: q, k, v must be on one device");
  TORCH_CHECK(k.size(0) == q.size(0) && v.size(0) == q.size(0), "attention: batch sizes differ: q ", q.sizes(),
              ", k ", k.sizes(), ", v ", v.sizes());
  TORCH_CHECK(k.size(1) == q.size(1) && v.size(1) == q.size(1), "attention: head counts differ: q ", q.sizes(),
              ", k ", k.sizes(), ", v ", v.sizes());
  TORCH_CHECK(k.size(3) == q.size(3), "attention: q and k head dims differ: ", q.size(3), " vs ", k.size(3));
  TORCH_CHECK(v.size(2) == k.size(2), "attention: k and v sequence lengths differ: ", k.size(2), " vs ", v.size(2));
  TORCH_CHECK(q.size(2) >= 1 && k.size(2) >= 1 && q.size(3) >= 1,
              "attention: need Lq >= 1, Lk >= 1 and D >= 1, got q ", q.sizes(), ", k ", k.sizes());
  if (mask) {
    const auto& m = *mask;
    TORCH_CHECK(m.scalar_type() == at::kBool || at::isFloatingType(m.scalar_type()),
                "attention: attn_mask must be bool (true = keep) or floating (additive), got ", m.scalar_type());
    TORCH_CHECK(m.dim() <= 4, "attention: attn_mask must have at most 4 dims, got ", m.sizes());
    TORCH_CHECK(m.device() == q.device(), "attention: attn_mask is on ", m.device(), ", q on ", q.device());
    const int64_t full[4] = {q.size(0), q.size(1), q.size(2), k.size(2)};
    for (int64_t i = 0; i < m.dim(); ++i) {
      const int64_t s = m.size(m.dim() - 1 - i), want = full[3 - i];
      TORCH_CHECK(s == 1 || s == want, "attention: attn_mask of shape ", m.sizes(),
                  " does not broadcast to B x H x Lq x Lk = [", full[0], ", ", full[1], ", ", full[2], ", ", full[3],
                  "]");
    }
  }
  if (sink) {
    detail::check_floating(*sink, kOp, "sink");
    TORCH_CHECK(sink->device() == q.device(), "attention: sink is on ", sink->device(), ", q on ", q.device());
    TORCH_CHECK(sink->dim() == 1 && sink->size(0) == q.size(1), "attention: sink must have shape [H] = [", q.size(1),
                "], got ", sink->sizes());
  } else {
    detail::check_n(n, kOp);
  }
  if (scale) TORCH_CHECK(std::isfinite(*scale), "attention: scale must be finite, got ", *scale);
}

double attention_scale(const at::Tensor& q, std::optional<double> scale) {
  return scale ? *scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
}

}  // namespace detail

namespace {

// Logits B x H x Lq x Lk with the mask and the causal rule applied (masked entries are -inf).
at::Tensor masked_scores(const at::Tensor& q, const at::Tensor& k, const std::optional<at::Tensor>& mask, bool causal,
                         std::optional<double> scale,
                         const std::function<at::Tensor(const at::Tensor&)>& scores_transform = nullptr) {
  const double s = detail::attention_scale(q, scale);
  auto scores = at::matmul(q, k.transpose(-2, -1)) * s;
  if (scores_transform) scores = scores_transform(scores);
  if (mask) {
    scores = mask->scalar_type() == at::kBool ? scores.masked_fill(mask->logical_not(), -INFINITY)
                                              : scores + mask->to(scores.scalar_type());
  }
  if (causal) {
    const int64_t lq = q.size(2), lk = k.size(2);
    // Bottom-right aligned: query i (of Lq) sees keys j <= i + (Lk - Lq).
    const auto hidden = at::ones({lq, lk}, q.options().dtype(at::kBool)).triu(lk - lq + 1);
    scores = scores.masked_fill(hidden, -INFINITY);
  }
  return scores;
}

at::Tensor no_op_logits(const at::Tensor& scores, const std::optional<at::Tensor>& sink, double n) {
  auto shape = scores.sizes().vec();
  shape.back() = 1;
  if (sink) return sink->to(scores.scalar_type()).view({1, -1, 1, 1}).expand(shape);
  return at::full(shape, n > 0 ? std::log(n) : -INFINITY, scores.options());
}

// softmax_n of the scores (B x H x Lq x Lk), or softmax with the per-head sink logit as the extra key.
at::Tensor exact_probabilities(const at::Tensor& scores, const std::optional<at::Tensor>& sink, double n) {
  if (!sink) return softmax_n(scores, n, -1);  // also defines the n = 0, fully masked row (zeros)
  // A learned sink is a finite logit, so plain softmax over the extended row is safe and differentiable in it.
  return at::softmax(at::cat({scores, no_op_logits(scores, sink, n)}, -1), -1).narrow(-1, 0, scores.size(-1));
}

}  // namespace

namespace detail {

std::tuple<at::Tensor, at::Tensor> attention_lse_composite(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v,
                                                           const std::optional<at::Tensor>& attn_mask,
                                                           const std::optional<at::Tensor>& sink, double n,
                                                           bool causal, std::optional<double> scale) {
  check_attention_args(q, k, v, attn_mask, sink, n, scale);
  const auto scores = masked_scores(q, k, attn_mask, causal, scale);
  const auto extended = at::cat({scores, no_op_logits(scores, sink, n)}, -1);
  const auto lse = at::logsumexp(extended, -1);
  return {at::matmul(exact_probabilities(scores, sink, n), v), lse};
}

void check_clip(double gamma, double eta) {
  TORCH_CHECK(std::isfinite(gamma) && std::isfinite(eta) && eta > gamma,
              "clipped_attention: need finite gamma < eta (stretch (eta - gamma) > 0), got gamma=", gamma,
              " eta=", eta);
}

at::Tensor clipped_attention_composite(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const std::optional<at::Tensor>& attn_mask,
                                       const std::optional<at::Tensor>& sink, double n, double gamma, double eta,
                                       bool causal, std::optional<double> scale) {
  check_attention_args(q, k, v, attn_mask, sink, n, scale);
  AttentionOptions opt{attn_mask, sink, n, causal, scale};
  return at::matmul(attention_probabilities(q, k, opt, std::pair{gamma, eta}), v);
}

}  // namespace detail

at::Tensor attention_probabilities(const at::Tensor& q, const at::Tensor& k, const AttentionOptions& opt,
                                   std::optional<std::pair<double, double>> clip,
                                   const std::function<at::Tensor(const at::Tensor&)>& scores_transform) {
  detail::check_attention_args(q, k, k, opt.attn_mask, opt.sink, opt.n, opt.scale);
  const auto scores = masked_scores(q, k, opt.attn_mask, opt.causal, opt.scale, scores_transform);
  const auto p = exact_probabilities(scores, opt.sink, opt.n);
  if (!clip) return p;
  const auto [gamma, eta] = *clip;
  detail::check_clip(gamma, eta);
  // Hidden keys (mask, causal) stay at 0 even when gamma > 0 would lift them.
  return at::clamp(p * (eta - gamma) + gamma, 0.0, 1.0).masked_fill(at::isneginf(scores), 0.0);
}

at::Tensor attention_scores(const at::Tensor& q, const at::Tensor& k, const AttentionOptions& opt,
                            const std::function<at::Tensor(const at::Tensor&)>& scores_transform) {
  detail::check_attention_args(q, k, k, opt.attn_mask, opt.sink, opt.n, opt.scale);
  return masked_scores(q, k, opt.attn_mask, opt.causal, opt.scale, scores_transform);
}

namespace {
using AttentionOp = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                       const std::optional<at::Tensor>&,
                                                       const std::optional<at::Tensor>&, double, bool,
                                                       std::optional<double>);
}

std::tuple<at::Tensor, at::Tensor> attention_lse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const AttentionOptions& opt) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("outeffhop::attention_lse", "").typed<AttentionOp>();
  return op.call(q, k, v, opt.attn_mask, opt.sink, opt.n, opt.causal, opt.scale);
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& opt) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::attention", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, double,
                                         bool, std::optional<double>)>();
  return op.call(q, k, v, opt.attn_mask, opt.sink, opt.n, opt.causal, opt.scale);
}

at::Tensor clipped_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double gamma, double eta,
                             const AttentionOptions& opt) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::clipped_attention", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, double,
                                         double, double, bool, std::optional<double>)>();
  return op.call(q, k, v, opt.attn_mask, opt.sink, opt.n, gamma, eta, opt.causal, opt.scale);
}

namespace reference {

std::tuple<at::Tensor, at::Tensor> attention_via_zero_key(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const AttentionOptions& opt) {
  const auto q64 = q.to(at::kDouble), k64 = k.to(at::kDouble), v64 = v.to(at::kDouble);
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2), D = q.size(3);
  const double scale = opt.scale ? *opt.scale : 1.0 / std::sqrt(static_cast<double>(D));
  // Append a zero key and a zero value; its logit q.0 * scale = 0 is replaced by log n (or sink_h) below.
  const auto k_ext = at::cat({k64, at::zeros({B, H, 1, D}, k64.options())}, 2);
  const auto v_ext = at::cat({v64, at::zeros({B, H, 1, v.size(3)}, v64.options())}, 2);
  auto scores = at::matmul(q64, k_ext.transpose(-2, -1)) * scale;  // B x H x Lq x (Lk + 1)
  auto keep = at::ones({B, H, Lq, Lk + 1}, q64.options().dtype(at::kBool));
  auto bias = at::zeros({B, H, Lq, Lk + 1}, q64.options());
  if (opt.attn_mask) {
    const auto m = opt.attn_mask->expand({B, H, Lq, Lk});
    if (m.scalar_type() == at::kBool) {
      keep.narrow(3, 0, Lk).copy_(m);
    } else {
      bias.narrow(3, 0, Lk).copy_(m.to(at::kDouble));
    }
  }
  if (opt.causal) {
    const auto hidden = at::ones({Lq, Lk}, keep.options()).triu(Lk - Lq + 1);
    keep.narrow(3, 0, Lk).logical_and_(hidden.logical_not());
  }
  const auto null_logit = opt.sink ? opt.sink->to(at::kDouble).view({1, H, 1})
                                   : at::full({1, 1, 1}, opt.n > 0 ? std::log(opt.n) : -INFINITY, q64.options());
  scores.select(3, Lk).copy_(null_logit.expand({B, H, Lq}));
  scores = at::where(keep, scores + bias, at::full({}, -INFINITY, q64.options()));
  const auto lse = at::logsumexp(scores, -1);  // -inf when the whole row (null key included) is masked
  const auto safe_lse = at::where(at::isinf(lse), at::zeros_like(lse), lse);
  const auto p = at::exp(scores - safe_lse.unsqueeze(-1));
  return {at::matmul(p, v_ext), lse};
}

}  // namespace reference
}  // namespace outeffhop
