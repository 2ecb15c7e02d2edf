// How much attention each layer's heads give, from their attention probabilities (the `attn_probs` points). A row of
// softmax sums to 1: a head that has nothing to add must still put its mass somewhere, and parks it on a cheap key
// (BOS, [CLS], [SEP]) — the "no-op" that grows outliers. softmax_1 and clipped softmax let a row sum to less (to 0
// for a head that abstains). Per point: the mean row mass, the share of rows with mass below one half, and the mean
// probability on the first key (BOS / [CLS] / the class token), and the mean entropy of the rows that give any mass,
// each scaled to sum to 1 (how many keys a head spreads over: log 1 = 0 for one key, log n for n alike). Gated
// attention can also switch a head off after the fact: its gates (the `attn_gates` points) are summarised as the mean
// gate and the share of gates below one half.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace outeffhop::analysis {

struct AttentionUsePoint {
  std::string point;
  int64_t rows = 0;
  double mean_mass = 0;       // mean over rows of sum_k p
  double low_mass_share = 0;  // share of rows with sum_k p < 0.5
  double first_key_mass = 0;  // mean over rows of p[..., 0]
  int64_t spread_rows = 0;    // rows with sum_k p > 0
  double mean_entropy = 0;    // mean over those rows of -sum_k q log q, q = p / sum_k p (nats)
  int64_t gates = 0;          // gate values seen (0: not a gated attention)
  double mean_gate = 0;       // mean gate in (0, 1)
  double low_gate_share = 0;  // share of gates < 0.5
};

class AttentionUse {
 public:
  // probabilities: ... x T_q x T_k (one row per query; NaN rows count with their NaN mass).
  void add(const std::string& point, const at::Tensor& probabilities);
  void add_gates(const std::string& point, const at::Tensor& gates);  // any shape, one gate per element
  std::vector<AttentionUsePoint> points() const;  // in the order first seen

 private:
  struct Sums {
    int64_t rows = 0, low_rows = 0, spread_rows = 0, gates = 0, low_gates = 0;
    double mass = 0, first_key = 0, entropy = 0, gate = 0;
  };
  Sums& sums(const std::string& point);
  std::vector<std::string> order_;
  std::map<std::string, Sums> sums_;
};

}  // namespace outeffhop::analysis
