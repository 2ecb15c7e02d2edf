// Registrations of attention_lse and clipped_attention: the fused kernel where one applies (CPU; CUDA for half types,
// forward and recompute-based backward through a custom autograd function), the differentiable composite elsewhere
// and when a mask needs a gradient.
// A backward that must itself be differentiated (create_graph) is taken through the composite too.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "../core/attention_checks.h"
#include "../core/composites.h"
#include "attention_fused.h"

namespace outeffhop {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using detail::AttentionArgs;

// (out, lse) of the composite; lse is empty for clipped attention (not an output there).
variable_list composite_outputs(const AttentionArgs& a) {
  if (a.clipped)
    return {detail::clipped_attention_composite(a.q, a.k, a.v, a.attn_mask, a.sink, a.n, a.gamma, a.eta, a.causal,
                                                a.scale)};
  auto [out, lse] = detail::attention_lse_composite(a.q, a.k, a.v, a.attn_mask, a.sink, a.n, a.causal, a.scale);
  return {out, lse};
}

bool fused_applies(const AttentionArgs& a) {
  return detail::fused_attention_supports(a) && !(a.attn_mask && a.attn_mask->requires_grad());
}

variable_list forward_without_grad(const AttentionArgs& a) {
  if (!fused_applies(a)) return composite_outputs(a);
  const auto f = detail::fused_attention_forward(a);
  const auto type = a.q.scalar_type();
  if (a.clipped) return {f.out.to(type)};
  return {f.out.to(type), f.lse.to(type)};
}

AttentionArgs args_from(AutogradContext* ctx, const variable_list& saved) {
  AttentionArgs a;
  a.q = saved[0], a.k = saved[1], a.v = saved[2];
  if (saved[3].defined()) a.sink = saved[3];
  const auto& d = ctx->saved_data;
  if (d.at("mask").isTensor()) a.attn_mask = d.at("mask").toTensor();
  a.n = d.at("n").toDouble();
  a.causal = d.at("causal").toBool();
  if (!d.at("scale").isNone()) a.scale = d.at("scale").toDouble();
  a.clipped = d.at("clipped").toBool();
  a.gamma = d.at("gamma").toDouble();
  a.eta = d.at("eta").toDouble();
  return a;
}

class FusedAttentionFunction : public torch::autograd::Function<FusedAttentionFunction> {
 public:
  // Returns {out} (clipped) or {out, lse}; q, k, v, sink are the differentiable inputs.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const std::optional<at::Tensor>& sink, const std::optional<at::Tensor>& attn_mask,
                               double n, bool causal, std::optional<double> scale, bool clipped, double gamma,
                               double eta) {
    at::AutoDispatchBelowADInplaceOrView guard;
    const AttentionArgs a{q, k, v, attn_mask, sink, n, causal, scale, clipped, gamma, eta};
    const auto f = detail::fused_attention_forward(a);
    ctx->save_for_backward({q, k, v, sink ? *sink : at::Tensor(), f.out, f.lse});
    ctx->saved_data["mask"] = attn_mask ? c10::IValue(*attn_mask) : c10::IValue();
    ctx->saved_data["n"] = n;
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale ? c10::IValue(*scale) : c10::IValue();
    ctx->saved_data["clipped"] = clipped;
    ctx->saved_data["gamma"] = gamma;
    ctx->saved_data["eta"] = eta;
    const auto type = q.scalar_type();
    if (clipped) return {f.out.to(type)};
    auto lse = f.lse.to(type);
    return {f.out.to(type), lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto a = args_from(ctx, saved);
    const at::Tensor& grad_out = grads[0];
    const at::Tensor grad_lse = grads.size() > 1 ? grads[1] : at::Tensor();
    variable_list result(11);  // one per forward argument after ctx
    if (at::GradMode::is_enabled()) {  // create_graph: differentiate the composite so the gradient has a graph
      auto outputs = composite_outputs(a);
      variable_list outs, gouts, inputs;
      for (size_t i = 0; i < outputs.size(); ++i)
        if (grads[i].defined()) outs.push_back(outputs[i]), gouts.push_back(grads[i]);
      std::vector<int> slot;
      for (int i = 0; i < 4; ++i)
        if (saved[i].defined() && saved[i].requires_grad()) inputs.push_back(saved[i]), slot.push_back(i);
      const auto g = torch::autograd::grad(outs, inputs, gouts, /*retain_graph=*/true, /*create_graph=*/true,
                                           /*allow_unused=*/true);
      for (size_t i = 0; i < g.size(); ++i) result[slot[i]] = g[i];
      return result;
    }
    const auto& out = saved[4];
    const auto g = detail::fused_attention_backward(a, grad_out.defined() ? grad_out : at::zeros_like(out), grad_lse,
                                                    out, saved[5]);
    result[0] = g.q, result[1] = g.k, result[2] = g.v, result[3] = g.sink;
    return result;
  }
};

variable_list apply_autograd(const AttentionArgs& a) {
  if (!fused_applies(a)) return composite_outputs(a);
  return FusedAttentionFunction::apply(a.q, a.k, a.v, a.sink, a.attn_mask, a.n, a.causal, a.scale, a.clipped,
                                       a.gamma, a.eta);
}

AttentionArgs attention_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& sink, double n,
                             bool causal, std::optional<double> scale) {
  detail::check_attention_args(q, k, v, mask, sink, n, scale);
  return {q, k, v, mask, sink, n, causal, scale};
}

AttentionArgs clipped_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& sink, double n,
                           double gamma, double eta, bool causal, std::optional<double> scale) {
  auto a = attention_args(q, k, v, mask, sink, n, causal, scale);
  detail::check_clip(gamma, eta);
  a.clipped = true, a.gamma = gamma, a.eta = eta;
  return a;
}

// The op bodies, with or without a graph: kAutograd registers under the Autograd key, the other below it.
template <bool kAutograd>
variable_list run(const AttentionArgs& a) {
  return kAutograd ? apply_autograd(a) : forward_without_grad(a);
}

template <bool kAutograd>
std::tuple<at::Tensor, at::Tensor> attention_lse_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                    const std::optional<at::Tensor>& mask,
                                                    const std::optional<at::Tensor>& sink, double n, bool causal,
                                                    std::optional<double> scale) {
  const auto r = run<kAutograd>(attention_args(q, k, v, mask, sink, n, causal, scale));
  return {r[0], r[1]};
}

template <bool kAutograd>
at::Tensor clipped_attention_op(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& sink, double n,
                                double gamma, double eta, bool causal, std::optional<double> scale) {
  return run<kAutograd>(clipped_args(q, k, v, mask, sink, n, gamma, eta, causal, scale))[0];
}

}  // namespace

TORCH_LIBRARY_IMPL(outeffhop, Autograd, m) {
  m.impl("attention_lse", &attention_lse_op<true>);
  m.impl("clipped_attention", &clipped_attention_op<true>);
}

// Below autograd (inference mode, or no autograd key): the same choice of kernel without a graph.
TORCH_LIBRARY_IMPL(outeffhop, CompositeExplicitAutograd, m) {
  m.impl("attention_lse", &attention_lse_op<false>);
  m.impl("clipped_attention", &clipped_attention_op<false>);
}

}  // namespace outeffhop
