// Hopfield, HopfieldPooling, HopfieldLayer (see hopfield.h): projections into the Hopfield space, state updates
// xi <- a(beta xi K^T) K with a per-query stop rule, then the output association a(beta xi K^T) V. A softmax-family
// output association without dropout runs through the attention op (the fused kernel on CPU).
#include "outeffhop/nn/hopfield.h"

#include <torch/nn/functional/dropout.h>

#include <cmath>

#include "name_args.h"
#include "outeffhop/attention.h"
#include "outeffhop/softmax.h"
#include "outeffhop/sparse_maps.h"

namespace outeffhop::nn {
namespace {

enum Kind { kSoftmaxN, kSparsemax, kEntmax15, kEntmaxAlpha, kPoly };
constexpr const char* kWhat = "Hopfield association";

struct ParsedAssociation {
  Kind kind = kSoftmaxN;
  double n = 0, order = 0;
};

ParsedAssociation parse_association(const std::string& spec) {
  const auto [name, args] = detail::split_name_args(spec, kWhat);
  const bool with_arg = name == "softmax_n" || name == "poly_n";
  detail::expect_arg_count(spec, args, with_arg ? 1 : 0, with_arg ? 1 : 0, kWhat);
  if (name == "softmax") return {kSoftmaxN, 0.0};
  if (name == "softmax1") return {kSoftmaxN, 1.0};
  if (name == "softmax_n") {
    const double n = detail::parse_number(spec, args[0], kWhat);
    TORCH_CHECK(n >= 0, kWhat, " '", spec, "': n must be >= 0");
    return {kSoftmaxN, n};
  }
  if (name == "sparsemax") return {kSparsemax};
  if (name == "entmax15") return {kEntmax15};
  if (name == "entmax_alpha") return {kEntmaxAlpha};
  if (name == "poly_n") {
    const double order = detail::parse_number(spec, args[0], kWhat);
    TORCH_CHECK(order >= 1, kWhat, " '", spec, "': the order must be >= 1");
    return {kPoly, 0.0, order};
  }
  TORCH_CHECK(false, "unknown ", kWhat, " '", spec,
              "'; known: softmax, softmax1, softmax_n(N), sparsemax, entmax15, entmax_alpha, poly_n(N)");
}

torch::nn::LayerNorm layer_norm(int64_t size, bool affine, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({size}).elementwise_affine(affine).eps(eps));
}

at::Tensor activate(const std::string& name, const at::Tensor& x) {
  if (name.empty()) return x;
  if (name == "relu") return at::relu(x);
  if (name == "tanh") return at::tanh(x);
  if (name == "sigmoid") return at::sigmoid(x);
  if (name == "gelu") return at::gelu(x);
  TORCH_CHECK(false, "Hopfield: association_activation must be empty, relu, tanh, sigmoid or gelu, got '", name, "'");
}

// Masks in hopfield-layers' convention (true = padding / not allowed) as one keep-mask or additive mask for
// B x H x T x S logits; a zero association appended at the end is always kept.
std::optional<at::Tensor> keep_mask(const at::Tensor& padding, const at::Tensor& association, int64_t B, int64_t S,
                                    bool zero_association) {
  std::optional<at::Tensor> mask;
  if (padding.defined()) {
    TORCH_CHECK(padding.scalar_type() == at::kBool && padding.sizes() == at::IntArrayRef({B, S}),
                "Hopfield: stored_pattern_padding_mask must be bool B x S = [", B, ", ", S, "] (true = padding), got ",
                padding.scalar_type(), " ", padding.sizes());
    mask = padding.logical_not().view({B, 1, 1, S});
  }
  if (association.defined()) {
    if (association.scalar_type() == at::kBool) {
      const auto keep = association.logical_not();
      mask = mask ? at::logical_and(*mask, keep) : keep;
    } else {
      mask = mask ? at::where(*mask, association, at::full({}, -INFINITY, association.options())) : association;
    }
  }
  if (mask && zero_association) {
    // Give the mask 4 dims and its full width along the stored patterns, then append an always-kept column.
    auto m = *mask;
    while (m.dim() < 4) m = m.unsqueeze(0);
    m = m.expand({m.size(0), m.size(1), m.size(2), S});
    auto shape = m.sizes().vec();
    shape.back() = 1;
    mask = at::cat({m, m.scalar_type() == at::kBool ? at::ones(shape, m.options()) : at::zeros(shape, m.options())},
                   -1);
  }
  return mask;
}

}  // namespace

HopfieldMode parse_hopfield_mode(const std::string& name) {
  if (name == "MemoryRetrieval") return HopfieldMode::kMemoryRetrieval;
  if (name == "OutEffHop") return HopfieldMode::kOutEffHop;
  if (name == "OutEffHopPooling") return HopfieldMode::kOutEffHopPooling;
  if (name == "OutEffHopLayer") return HopfieldMode::kOutEffHopLayer;
  TORCH_CHECK(false, "unknown Hopfield mode '", name,
              "'; known: MemoryRetrieval, OutEffHop, OutEffHopPooling, OutEffHopLayer");
}

HopfieldOptions memory_retrieval_options(int64_t dim, double beta, int64_t update_steps_max, double update_steps_eps) {
  HopfieldOptions o;
  o.input_size = o.hidden_size = o.pattern_size = dim;
  o.scaling = {beta};
  o.update_steps_max = update_steps_max;
  o.update_steps_eps = update_steps_eps;
  o.normalize_stored_pattern = o.normalize_stored_pattern_affine = false;
  o.normalize_state_pattern = o.normalize_state_pattern_affine = false;
  o.normalize_pattern_projection = o.normalize_pattern_projection_affine = false;
  o.stored_pattern_as_static = o.state_pattern_as_static = o.pattern_projection_as_static = true;
  o.disable_out_projection = true;
  o.association = "softmax1";
  return o;
}

HopfieldOptions options_for_mode(HopfieldMode mode, HopfieldOptions base) {
  if (mode == HopfieldMode::kMemoryRetrieval) {
    return memory_retrieval_options(base.input_size, base.scaling.empty() ? 1.0 : base.scaling[0],
                                    base.update_steps_max, base.update_steps_eps);
  }
  base.association = "softmax1";
  return base;
}

HopfieldImpl::HopfieldImpl(HopfieldOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  TORCH_CHECK(o.input_size > 0 && o.num_heads > 0, "Hopfield: input_size and num_heads must be > 0, got ",
              o.input_size, " and ", o.num_heads);
  TORCH_CHECK(o.hidden_size > 0 || o.input_size % o.num_heads == 0, "Hopfield: input_size (", o.input_size,
              ") must be a multiple of num_heads (", o.num_heads, ") unless hidden_size is given");
  TORCH_CHECK(o.update_steps_max >= -1, "Hopfield: update_steps_max must be >= 0, or -1 (until update_steps_eps)");
  TORCH_CHECK(o.update_steps_eps >= 0, "Hopfield: update_steps_eps must be >= 0");
  TORCH_CHECK(o.dropout >= 0 && o.dropout < 1, "Hopfield: dropout must be in [0, 1), got ", o.dropout);
  TORCH_CHECK(!(o.normalize_stored_pattern_affine && !o.normalize_stored_pattern) &&
                  !(o.normalize_state_pattern_affine && !o.normalize_state_pattern) &&
                  !(o.normalize_pattern_projection_affine && !o.normalize_pattern_projection),
              "Hopfield: an affine normalisation needs its normalisation enabled");
  activate(o.association_activation, at::zeros({1}));  // validates the name now rather than at the first forward
  const auto association = parse_association(o.association);
  kind_ = association.kind, n_ = association.n, poly_order_ = association.order;
  const int64_t H = o.num_heads;
  hidden_ = o.hidden_size > 0 ? o.hidden_size : o.input_size / H;
  pattern_ = o.pattern_size > 0 ? o.pattern_size : hidden_;
  const int64_t ds = stored_pattern_dim(), dv = pattern_projection_dim();
  auto linear = [&](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(o.input_bias));
  };
  auto check_static = [&](bool is_static, int64_t size, int64_t needed, const char* what) {
    TORCH_CHECK(!is_static || size == needed, "Hopfield: a static ", what, " must have num_heads * its head size = ",
                needed, " features, got ", size);
  };
  check_static(o.state_pattern_as_static, o.input_size, H * hidden_, "state pattern");
  check_static(o.stored_pattern_as_static, ds, H * hidden_, "stored pattern");
  check_static(o.pattern_projection_as_static, o.pattern_projection_as_connected ? H * hidden_ : dv, H * pattern_,
               "pattern projection");
  if (!o.state_pattern_as_static) state_projection_ = register_module("state_projection", linear(o.input_size, H * hidden_));
  if (!o.stored_pattern_as_static) stored_projection_ = register_module("stored_projection", linear(ds, H * hidden_));
  if (!o.pattern_projection_as_static) {
    pattern_projection_ = register_module(
        "pattern_projection", linear(o.pattern_projection_as_connected ? H * hidden_ : dv, H * pattern_));
  }
  if (!o.disable_out_projection) {
    out_projection_ =
        register_module("out_projection", linear(H * pattern_, o.output_size > 0 ? o.output_size : o.input_size));
  }
  if (o.normalize_stored_pattern)
    norm_stored_pattern_ = register_module(
        "norm_stored_pattern", layer_norm(ds, o.normalize_stored_pattern_affine, o.normalize_stored_pattern_eps));
  if (o.normalize_state_pattern)
    norm_state_pattern_ = register_module(
        "norm_state_pattern", layer_norm(o.input_size, o.normalize_state_pattern_affine, o.normalize_state_pattern_eps));
  if (o.normalize_pattern_projection)
    norm_pattern_projection_ = register_module(
        "norm_pattern_projection",
        layer_norm(dv, o.normalize_pattern_projection_affine, o.normalize_pattern_projection_eps));
  if (o.normalize_hopfield_space)
    norm_hopfield_space_ = register_module(
        "norm_hopfield_space", layer_norm(hidden_, o.normalize_hopfield_space_affine, o.normalize_hopfield_space_eps));
  const bool all_static = o.state_pattern_as_static && o.stored_pattern_as_static && o.pattern_projection_as_static;
  std::vector<double> beta = o.scaling;
  if (beta.empty()) beta = {all_static ? 1.0 : 1.0 / std::sqrt(static_cast<double>(hidden_))};
  TORCH_CHECK(beta.size() == 1 || static_cast<int64_t>(beta.size()) == H, "Hopfield: scaling must have one value or ",
              H, " (one per head), got ", beta.size());
  for (const double b : beta) TORCH_CHECK(std::isfinite(b) && b > 0, "Hopfield: scaling must be finite and > 0");
  beta_ = register_buffer("scaling", torch::tensor(beta, torch::kFloat).expand({H}).contiguous());
  if (kind_ == kEntmaxAlpha) alpha_logit_ = register_parameter("association_alpha_logit", torch::zeros({H}));
  last_steps_ = torch::zeros({0}, torch::kLong);
}

int64_t HopfieldImpl::stored_pattern_dim() const {
  return options_.stored_pattern_size > 0 ? options_.stored_pattern_size : options_.input_size;
}

int64_t HopfieldImpl::pattern_projection_dim() const {
  return options_.pattern_projection_size > 0 ? options_.pattern_projection_size : options_.input_size;
}

HopfieldImpl::Association HopfieldImpl::prepare(const at::Tensor& stored_in, const at::Tensor& state_in,
                                                const at::Tensor& projection_in, const at::Tensor& padding_mask,
                                                const at::Tensor& association_mask) {
  const auto& o = options_;
  auto order = [&](const at::Tensor& t) { return o.batch_first ? t : t.transpose(0, 1); };
  auto stored = order(stored_in), state = order(state_in), projection = order(projection_in);
  TORCH_CHECK(state.dim() == 3 && state.size(2) == o.input_size, "Hopfield: state pattern must be B x T x ",
              o.input_size, ", got ", state.sizes());
  TORCH_CHECK(stored.dim() == 3 && stored.size(0) == state.size(0) && stored.size(2) == stored_pattern_dim(),
              "Hopfield: stored pattern must be B x S x ", stored_pattern_dim(), " with the state's batch, got ",
              stored.sizes());
  TORCH_CHECK(projection.dim() == 3 && projection.sizes().slice(0, 2) == stored.sizes().slice(0, 2) &&
                  projection.size(2) == pattern_projection_dim(),
              "Hopfield: pattern projection must be B x S x ", pattern_projection_dim(),
              " like the stored pattern, got ", projection.sizes());
  if (norm_stored_pattern_) stored = norm_stored_pattern_->forward(stored);
  if (norm_state_pattern_) state = norm_state_pattern_->forward(state);
  if (norm_pattern_projection_) projection = norm_pattern_projection_->forward(projection);
  const int64_t B = state.size(0), T = state.size(1), S = stored.size(1), H = o.num_heads;
  const auto q = state_projection_ ? state_projection_->forward(state) : state;
  const auto k = stored_projection_ ? stored_projection_->forward(stored) : stored;
  auto v = o.pattern_projection_as_connected ? k : projection;
  if (pattern_projection_) v = pattern_projection_->forward(v);
  auto heads = [&](const at::Tensor& x, int64_t L, int64_t d) { return x.reshape({B, L, H, d}).transpose(1, 2); };
  Association a{heads(k, S, hidden_), heads(v, S, pattern_), heads(q, T, hidden_), std::nullopt};
  if (norm_hopfield_space_) {
    a.k = norm_hopfield_space_->forward(a.k);
    a.xi = norm_hopfield_space_->forward(a.xi);
  }
  if (o.add_zero_association) {
    a.k = at::cat({a.k, at::zeros({B, H, 1, hidden_}, a.k.options())}, 2);
    a.v = at::cat({a.v, at::zeros({B, H, 1, pattern_}, a.v.options())}, 2);
  }
  a.mask = keep_mask(padding_mask, association_mask, B, S, o.add_zero_association);
  return a;
}

at::Tensor HopfieldImpl::probabilities(const at::Tensor& xi, const Association& a) {
  auto logits = at::matmul(xi, a.k.transpose(-2, -1)) * beta_.to(xi.scalar_type()).view({1, -1, 1, 1});
  if (a.mask) {
    logits = a.mask->scalar_type() == at::kBool ? logits.masked_fill(a.mask->logical_not(), -INFINITY)
                                                : logits + *a.mask;
  }
  switch (kind_) {
    case kSoftmaxN: return softmax_n(logits, n_, -1);
    case kSparsemax: return sparsemax(logits, -1);
    case kEntmax15: return entmax15(logits, -1);
    case kEntmaxAlpha: return entmax_bisect(logits, 1 + at::sigmoid(alpha_logit_).view({1, -1, 1, 1}), -1);
    case kPoly: {
      const auto r = at::relu(logits).pow(poly_order_);
      const auto total = r.sum(-1, true);
      return r / at::where(total > 0, total, at::ones_like(total));
    }
  }
  TORCH_CHECK(false, "Hopfield: unknown association");
}

void HopfieldImpl::update_state(Association& a) {
  const auto& o = options_;
  const int64_t max_steps = o.update_steps_max < 0 ? kMaxUpdateSteps : o.update_steps_max;
  auto active = at::ones(a.xi.sizes().slice(0, 3), a.xi.options().dtype(at::kBool));
  last_steps_ = at::zeros(active.sizes(), a.xi.options().dtype(at::kLong));
  at::Tensor previous;
  for (int64_t step = 0; step < max_steps && active.any().item<bool>(); ++step) {
    const auto p = probabilities(a.xi, a);
    const auto next = at::matmul(p, a.k);
    at::Tensor converged;
    if (o.stop_rule == StopRule::kState) {
      converged = (next - a.xi).norm(2, -1) <= o.update_steps_eps;
    } else {
      converged = previous.defined() ? (p - previous).abs().amax(-1) <= o.update_steps_eps : at::zeros_like(active);
    }
    a.xi = at::where(active.unsqueeze(-1), next, a.xi);
    last_steps_ += active.to(at::kLong);
    active = active.logical_and(converged.logical_not());
    previous = p;
  }
}

at::Tensor HopfieldImpl::finish(const at::Tensor& heads_out, int64_t B, int64_t T) {
  auto out = heads_out.transpose(1, 2).reshape({B, T, options_.num_heads * pattern_});
  if (out_projection_) out = out_projection_->forward(out);
  out = activate(options_.association_activation, out);
  return options_.batch_first ? out : out.transpose(0, 1);
}

at::Tensor HopfieldImpl::forward(const at::Tensor& stored, const at::Tensor& state, const at::Tensor& projection,
                                 const at::Tensor& stored_pattern_padding_mask, const at::Tensor& association_mask) {
  auto a = prepare(stored, state, projection, stored_pattern_padding_mask, association_mask);
  update_state(a);
  const int64_t B = a.xi.size(0), T = a.xi.size(2);
  const bool dropout = is_training() && options_.dropout > 0;
  if (kind_ == kSoftmaxN && !dropout) {  // beta folded into the state: per-head scales, one attention call
    AttentionOptions opt;
    opt.attn_mask = a.mask;
    opt.n = n_;
    opt.scale = 1.0;
    const auto scaled = a.xi * beta_.to(a.xi.scalar_type()).view({1, -1, 1, 1});
    return finish(attention(scaled, a.k, a.v, opt), B, T);
  }
  auto p = probabilities(a.xi, a);
  if (dropout) p = torch::nn::functional::dropout(p, torch::nn::functional::DropoutFuncOptions().p(options_.dropout));
  return finish(at::matmul(p, a.v), B, T);
}

at::Tensor HopfieldImpl::association_matrix(const at::Tensor& stored, const at::Tensor& state,
                                            const at::Tensor& projection, const at::Tensor& padding_mask,
                                            const at::Tensor& association_mask) {
  torch::NoGradGuard no_grad;
  auto a = prepare(stored, state, projection, padding_mask, association_mask);
  update_state(a);
  return probabilities(a.xi, a);
}

at::Tensor HopfieldImpl::projected_pattern_matrix(const at::Tensor& stored, const at::Tensor& state,
                                                  const at::Tensor& projection, const at::Tensor& padding_mask,
                                                  const at::Tensor& association_mask) {
  torch::NoGradGuard no_grad;
  return prepare(stored, state, projection, padding_mask, association_mask).v;
}

HopfieldPoolingImpl::HopfieldPoolingImpl(HopfieldOptions options, int64_t quantity, bool trainable) {
  TORCH_CHECK(quantity >= 1, "HopfieldPooling: quantity must be >= 1, got ", quantity);
  hopfield = register_module("hopfield", Hopfield(options));
  const int64_t size = options.state_pattern_as_static ? options.num_heads * hopfield->hidden_size() : options.input_size;
  const auto shape = options.batch_first ? std::vector<int64_t>{1, quantity, size} : std::vector<int64_t>{quantity, 1, size};
  pooling_weights = register_parameter("pooling_weights", torch::randn(shape) * 0.02, trainable);
}

at::Tensor HopfieldPoolingImpl::expanded_state(int64_t batch) const {
  const auto& s = pooling_weights.sizes();
  return hopfield->options().batch_first ? pooling_weights.expand({batch, s[1], s[2]})
                                         : pooling_weights.expand({s[0], batch, s[2]});
}

at::Tensor HopfieldPoolingImpl::forward(const at::Tensor& stored, const at::Tensor& projection,
                                        const at::Tensor& stored_pattern_padding_mask,
                                        const at::Tensor& association_mask) {
  const bool batch_first = hopfield->options().batch_first;
  const auto out = hopfield->forward(stored, expanded_state(stored.size(batch_first ? 0 : 1)), projection,
                                     stored_pattern_padding_mask, association_mask);
  return (batch_first ? out : out.transpose(0, 1)).flatten(1);  // B x (quantity * output size)
}

at::Tensor HopfieldPoolingImpl::forward(const at::Tensor& input, const at::Tensor& stored_pattern_padding_mask,
                                        const at::Tensor& association_mask) {
  return forward(input, input, stored_pattern_padding_mask, association_mask);
}

at::Tensor HopfieldPoolingImpl::association_matrix(const at::Tensor& input, const at::Tensor& padding_mask) {
  const bool batch_first = hopfield->options().batch_first;
  return hopfield->association_matrix(input, expanded_state(input.size(batch_first ? 0 : 1)), input, padding_mask);
}

HopfieldLayerImpl::HopfieldLayerImpl(HopfieldOptions options, int64_t quantity, bool lookup_weights_as_separated,
                                     bool lookup_targets_as_trainable, bool trainable) {
  TORCH_CHECK(quantity >= 1, "HopfieldLayer: quantity must be >= 1, got ", quantity);
  hopfield = register_module("hopfield", Hopfield(options));
  const int64_t stored = options.stored_pattern_as_static ? options.num_heads * hopfield->hidden_size()
                                                          : hopfield->stored_pattern_dim();
  auto shape = [&](int64_t size) {
    return options.batch_first ? std::vector<int64_t>{1, quantity, size} : std::vector<int64_t>{quantity, 1, size};
  };
  lookup_weights = register_parameter("lookup_weights", torch::randn(shape(stored)) * 0.02, trainable);
  if (lookup_weights_as_separated) {
    const int64_t target = options.pattern_projection_size > 0 ? options.pattern_projection_size : stored;
    target_weights =
        register_parameter("target_weights", torch::randn(shape(target)) * 0.02, lookup_targets_as_trainable);
  } else {
    TORCH_CHECK(hopfield->pattern_projection_dim() == stored, "HopfieldLayer: without separate target weights the "
                "stored patterns are also the projections, so pattern_projection_size must equal their size ", stored);
  }
}

std::pair<at::Tensor, at::Tensor> HopfieldLayerImpl::stored_and_projection(int64_t batch) const {
  const bool batch_first = hopfield->options().batch_first;
  auto expand = [&](const at::Tensor& w) {
    return batch_first ? w.expand({batch, w.size(1), w.size(2)}) : w.expand({w.size(0), batch, w.size(2)});
  };
  const auto stored = expand(lookup_weights);
  return {stored, target_weights.defined() ? expand(target_weights) : stored};
}

at::Tensor HopfieldLayerImpl::forward(const at::Tensor& input, const at::Tensor& stored_pattern_padding_mask,
                                      const at::Tensor& association_mask) {
  const auto [stored, projection] = stored_and_projection(input.size(hopfield->options().batch_first ? 0 : 1));
  return hopfield->forward(stored, input, projection, stored_pattern_padding_mask, association_mask);
}

at::Tensor HopfieldLayerImpl::association_matrix(const at::Tensor& input) {
  const auto [stored, projection] = stored_and_projection(input.size(hopfield->options().batch_first ? 0 : 1));
  return hopfield->association_matrix(stored, input, projection);
}

}  // namespace outeffhop::nn
