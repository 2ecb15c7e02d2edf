// The attention variants the paper compares, chosen by name: what replaces softmax in a multi-head attention layer.
#pragma once
#include <optional>
#include <string>

namespace outeffhop::nn {

enum class GateKind { kNone, kLinear, kMlp };

// A sparse probability map in place of the softmax family (the sparse and generalized-sparse Hopfield baselines):
// sparsemax, 1.5-entmax, or alpha-entmax with a learned alpha_h = 1 + sigmoid(a_h) per head (a_h = 0 at start, the
// GSH of STanHop-Net). These always run eagerly (materialised scores).
enum class SparseMap { kNone, kSparsemax, kEntmax15, kEntmaxAlpha };

struct AttentionVariant {
  double n = 0.0;         // no-op mass: 0 = softmax, 1 = softmax_1 (OutEffHop), any n >= 0 = softmax_n
  bool sink = false;      // a learned per-head no-op logit s_h replaces n (n_h = exp(s_h)), initialised to log 1 = 0
  bool clipped = false;   // clip((eta - gamma) p + gamma, 0, 1) (Bondarenko et al. 2023)
  double gamma = 0.0, eta = 1.0;
  GateKind gate = GateKind::kNone;  // gated attention: sigmoid(G_h(x_h)) multiplies head h's output
  double gate_bias_init = -1.0986122886681098;  // logit(0.25): gates start mostly closed, as in the reference
  SparseMap sparse = SparseMap::kNone;          // replaces softmax_n (n, sink and clipping must be off)

  // Canonical spelling, parseable by parse_attention_variant (for the variants it can produce: clipped and gated
  // ones with n = 0 or 1).
  std::string name() const;
};

// Parses `softmax`, `softmax1`, `softmax_n(N)`, `sink`, `clipped(GAMMA,ETA)`, `clipped_softmax1(GAMMA,ETA)`,
// `gated(linear|mlp[,BIAS_INIT])`, `gated_softmax1(linear|mlp[,BIAS_INIT])`, `sparsemax`, `entmax15`,
// `entmax_alpha`. Throws with the list of names on anything else.
AttentionVariant parse_attention_variant(const std::string& spec);

}  // namespace outeffhop::nn
