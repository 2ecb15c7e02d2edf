// Multi-head attention with the paper's variants (see multihead_attention.h). Inference and dropout-free training
// call the attention ops (the fused kernel on CPU); attention dropout and transforming activation points need the
// probabilities, so they run eagerly.
#include "outeffhop/nn/multihead_attention.h"

#include <torch/nn/functional/dropout.h>

#include <cmath>

#include "outeffhop/attention.h"
#include "outeffhop/sparse_maps.h"

namespace outeffhop::nn {
namespace {

// The MLP gate d_head -> d_head/4 -> 1 with ReLU; children named "0" and "2" like the reference's nn.Sequential.
class GateMlpImpl : public torch::nn::Module {
 public:
  GateMlpImpl(int64_t in, int64_t hidden)
      : first_(register_module("0", torch::nn::Linear(in, hidden))),
        last_(register_module("2", torch::nn::Linear(hidden, 1))) {}
  at::Tensor forward(const at::Tensor& x) { return last_->forward(at::relu(first_->forward(x))); }
  torch::nn::Linear& last() { return last_; }

 private:
  torch::nn::Linear first_, last_;
};
TORCH_MODULE(GateMlp);

torch::nn::AnyModule make_gate(GateKind kind, int64_t head_dim, double bias_init) {
  if (kind == GateKind::kLinear) {
    torch::nn::Linear g(head_dim, 1);
    torch::NoGradGuard no_grad;
    g->bias.fill_(bias_init);
    return torch::nn::AnyModule(g);
  }
  GateMlp g(head_dim, std::max<int64_t>(1, head_dim / 4));
  torch::NoGradGuard no_grad;
  g->last()->bias.fill_(bias_init);
  return torch::nn::AnyModule(g);
}

}  // namespace

MultiheadAttentionImpl::MultiheadAttentionImpl(MultiheadAttentionOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  TORCH_CHECK(o.embed_dim > 0 && o.num_heads > 0 && o.embed_dim % o.num_heads == 0,
              "MultiheadAttention: embed_dim (", o.embed_dim, ") must be a positive multiple of num_heads (",
              o.num_heads, ")");
  TORCH_CHECK(o.dropout >= 0 && o.dropout < 1, "MultiheadAttention: dropout must be in [0, 1), got ", o.dropout);
  head_dim_ = o.embed_dim / o.num_heads;
  const int64_t kv = o.kv_dim > 0 ? o.kv_dim : o.embed_dim;
  auto linear = [&](int64_t in) { return torch::nn::Linear(torch::nn::LinearOptions(in, o.embed_dim).bias(o.bias)); };
  query_ = register_module(o.names.query, linear(o.embed_dim));
  key_ = register_module(o.names.key, linear(kv));
  value_ = register_module(o.names.value, linear(kv));
  if (!o.names.out.empty()) out_ = register_module(o.names.out, linear(o.embed_dim));
  if (o.variant.sink) sink_ = register_parameter("sink", torch::zeros({o.num_heads}));  // n_h = e^0 = 1 at start
  TORCH_CHECK(o.variant.sparse == SparseMap::kNone || (o.variant.n == 0 && !o.variant.sink && !o.variant.clipped),
              "MultiheadAttention: a sparse map (", o.variant.name(),
              ") replaces softmax_n: n, sink and clipping must be off");
  if (o.variant.sparse == SparseMap::kEntmaxAlpha)  // alpha = 1.5 at start
    entmax_alpha_logit_ = register_parameter("entmax_alpha_logit", torch::zeros({o.num_heads}));
  if (o.variant.gate != GateKind::kNone) {
    alpha_ = register_module("alpha", torch::nn::ModuleList());
    for (int64_t h = 0; h < o.num_heads; ++h) {
      gates_.push_back(make_gate(o.variant.gate, head_dim_, o.variant.gate_bias_init));
      alpha_->push_back(gates_.back().ptr());  // registered as alpha.{h}
    }
  }
}

MultiheadAttentionImpl::Heads MultiheadAttentionImpl::project(const at::Tensor& query, const at::Tensor& key_value,
                                                              const at::Tensor& key_padding_mask,
                                                              const at::Tensor& attn_mask) {
  const auto& o = options_;
  TORCH_CHECK(query.dim() == 3 && query.size(2) == o.embed_dim, "MultiheadAttention: query must be B x T x ",
              o.embed_dim, ", got ", query.sizes());
  const auto& source = key_value.defined() ? key_value : query;
  TORCH_CHECK(source.dim() == 3 && source.size(0) == query.size(0), "MultiheadAttention: key_value must be B x T x ",
              o.kv_dim > 0 ? o.kv_dim : o.embed_dim, " with the query's batch, got ", source.sizes());
  const int64_t B = query.size(0), Tq = query.size(1), Tk = source.size(1);
  auto split = [&](const at::Tensor& x, int64_t T) { return x.view({B, T, o.num_heads, head_dim_}).transpose(1, 2); };
  const auto& names = o.names;
  Heads heads{split(points_.linear(names.query, query_, query), Tq), split(points_.linear(names.key, key_, source), Tk),
              split(points_.linear(names.value, value_, source), Tk), std::nullopt};
  if (key_padding_mask.defined()) {
    TORCH_CHECK(key_padding_mask.scalar_type() == at::kBool && key_padding_mask.sizes() == at::IntArrayRef({B, Tk}),
                "MultiheadAttention: key_padding_mask must be bool B x Tk = [", B, ", ", Tk, "] (true = keep), got ",
                key_padding_mask.scalar_type(), " ", key_padding_mask.sizes());
    heads.mask = key_padding_mask.view({B, 1, 1, Tk});
  }
  if (attn_mask.defined()) {
    if (!heads.mask) {
      heads.mask = attn_mask;
    } else if (attn_mask.scalar_type() == at::kBool) {
      heads.mask = at::logical_and(*heads.mask, attn_mask);
    } else {
      heads.mask = at::where(*heads.mask, attn_mask, at::full({}, -INFINITY, attn_mask.options()));
    }
  }
  return heads;
}

at::Tensor MultiheadAttentionImpl::eager_probabilities(const Heads& heads, bool causal) {
  std::function<at::Tensor(const at::Tensor&)> scores_point;
  if (points_.points) scores_point = [this](const at::Tensor& s) { return points_.pass("attn_scores", s); };
  const auto sparse = options_.variant.sparse;
  if (sparse == SparseMap::kNone)
    return attention_probabilities(heads.q, heads.k, op_options(heads, causal), clip(), scores_point);
  const auto scores = attention_scores(heads.q, heads.k, op_options(heads, causal), scores_point);
  if (sparse == SparseMap::kSparsemax) return sparsemax(scores);
  if (sparse == SparseMap::kEntmax15) return entmax15(scores);
  const auto alpha = 1 + at::sigmoid(entmax_alpha_logit_).to(scores.scalar_type()).view({1, -1, 1, 1});
  return entmax_bisect(scores, alpha);
}

AttentionOptions MultiheadAttentionImpl::op_options(const Heads& heads, bool causal) const {
  AttentionOptions opt;
  opt.attn_mask = heads.mask;
  opt.n = options_.variant.n;
  opt.causal = causal;
  if (options_.variant.sink) opt.sink = sink_;
  return opt;
}

std::optional<std::pair<double, double>> MultiheadAttentionImpl::clip() const {
  const auto& v = options_.variant;
  return v.clipped ? std::optional{std::pair{v.gamma, v.eta}} : std::nullopt;
}

at::Tensor MultiheadAttentionImpl::gate(const at::Tensor& query, const at::Tensor& heads_out) {
  const int64_t B = query.size(0), T = query.size(1);
  const auto x = query.view({B, T, options_.num_heads, head_dim_});
  std::vector<at::Tensor> gates;
  for (int64_t h = 0; h < options_.num_heads; ++h)
    gates.push_back(at::sigmoid(gates_[h].forward(x.select(2, h))));  // B x T x 1
  const auto g = at::stack(gates, 1);  // B x H x T x 1
  points_.observe("attn_gates", g);
  return heads_out * g;
}

at::Tensor MultiheadAttentionImpl::forward(const at::Tensor& query, const at::Tensor& key_value,
                                           const at::Tensor& key_padding_mask, const at::Tensor& attn_mask,
                                           bool causal) {
  const auto& variant = options_.variant;
  const auto heads = project(query, key_value, key_padding_mask, attn_mask);
  at::Tensor out;
  const bool dropout = is_training() && options_.dropout > 0;
  if (dropout || points_.transforming() || variant.sparse != SparseMap::kNone) {
    auto p = points_.pass("attn_probs", eager_probabilities(heads, causal));
    if (dropout)
      p = torch::nn::functional::dropout(p, torch::nn::functional::DropoutFuncOptions().p(options_.dropout));
    out = at::matmul(p, heads.v);
  } else {
    const auto opt = op_options(heads, causal);
    out = variant.clipped ? clipped_attention(heads.q, heads.k, heads.v, variant.gamma, variant.eta, opt)
                          : attention(heads.q, heads.k, heads.v, opt);
  }
  if (variant.gate != GateKind::kNone) out = gate(query, out);
  out = points_.pass("context", out.transpose(1, 2).reshape({query.size(0), query.size(1), options_.embed_dim}));
  return out_ ? points_.linear(options_.names.out, out_, out) : out;
}

void MultiheadAttentionImpl::set_activation_points(ActivationPointsPtr points, std::string prefix) {
  points_ = {std::move(points), std::move(prefix)};
}

at::Tensor MultiheadAttentionImpl::probabilities(const at::Tensor& query, const at::Tensor& key_value,
                                                 const at::Tensor& key_padding_mask, const at::Tensor& attn_mask,
                                                 bool causal) {
  return eager_probabilities(project(query, key_value, key_padding_mask, attn_mask), causal);
}

}  // namespace outeffhop::nn
