// Parsing and naming of attention variants (see attention_variant.h).
#include "outeffhop/nn/attention_variant.h"

#include <c10/util/Exception.h>

#include <sstream>

#include "name_args.h"

namespace outeffhop::nn {
namespace {

constexpr const char* kWhat = "attention variant";
constexpr const char* kKnown =
    "softmax, softmax1, softmax_n(N), sink, clipped(GAMMA,ETA), clipped_softmax1(GAMMA,ETA), "
    "gated(linear|mlp[,BIAS]), gated_softmax1(linear|mlp[,BIAS]), sparsemax, entmax15, entmax_alpha";

double number(const std::string& spec, const std::string& text) { return detail::parse_number(spec, text, kWhat); }
void expect_args(const std::string& spec, const std::vector<std::string>& args, size_t min, size_t max) {
  detail::expect_arg_count(spec, args, min, max, kWhat);
}

}  // namespace

AttentionVariant parse_attention_variant(const std::string& spec) {
  const auto [name, args] = detail::split_name_args(spec, kWhat);
  AttentionVariant v;
  const bool one = name.size() > 8 && name.substr(name.size() - 8) == "softmax1";
  const std::string base = one ? name.substr(0, name.size() - 8) : name;
  if (name == "softmax" || name == "softmax1") {
    expect_args(spec, args, 0, 0);
    v.n = name == "softmax1" ? 1.0 : 0.0;
  } else if (name == "softmax_n") {
    expect_args(spec, args, 1, 1);
    v.n = number(spec, args[0]);
    TORCH_CHECK(v.n >= 0, "attention variant '", spec, "': n must be >= 0");
  } else if (name == "sink") {
    expect_args(spec, args, 0, 0);
    v.sink = true;
  } else if (base == "clipped" || base == "clipped_") {
    expect_args(spec, args, 2, 2);
    v.n = one ? 1.0 : 0.0;
    v.clipped = true;
    v.gamma = number(spec, args[0]);
    v.eta = number(spec, args[1]);
    TORCH_CHECK(v.gamma < v.eta, "attention variant '", spec, "': need gamma < eta");
  } else if (base == "gated" || base == "gated_") {
    expect_args(spec, args, 1, 2);
    v.n = one ? 1.0 : 0.0;
    TORCH_CHECK(args[0] == "linear" || args[0] == "mlp", "attention variant '", spec,
                "': the gate is linear or mlp, got '", args[0], "'");
    v.gate = args[0] == "linear" ? GateKind::kLinear : GateKind::kMlp;
    if (args.size() == 2) v.gate_bias_init = number(spec, args[1]);
  } else if (name == "sparsemax" || name == "entmax15" || name == "entmax_alpha") {
    expect_args(spec, args, 0, 0);
    v.sparse = name == "sparsemax"  ? SparseMap::kSparsemax
               : name == "entmax15" ? SparseMap::kEntmax15
                                    : SparseMap::kEntmaxAlpha;
  } else {
    TORCH_CHECK(false, "unknown attention variant '", spec, "'; known: ", kKnown);
  }
  return v;
}

std::string AttentionVariant::name() const {
  std::ostringstream out;
  const bool one = n == 1.0;
  if (sparse != SparseMap::kNone) {
    out << (sparse == SparseMap::kSparsemax  ? "sparsemax"
            : sparse == SparseMap::kEntmax15 ? "entmax15"
                                             : "entmax_alpha");
  } else if (clipped) {
    out << (one ? "clipped_softmax1(" : "clipped(") << gamma << "," << eta << ")";
  } else if (gate != GateKind::kNone) {
    out << (one ? "gated_softmax1(" : "gated(") << (gate == GateKind::kLinear ? "linear" : "mlp") << ","
        << gate_bias_init << ")";
  } else if (sink) {
    out << "sink";
  } else if (n == 0.0 || one) {
    out << (one ? "softmax1" : "softmax");
  } else {
    out << "softmax_n(" << n << ")";
  }
  return out.str();
}

}  // namespace outeffhop::nn
