// How much attention each layer's heads give, from their attention probabilities (the `attn_probs` points). A row of
// softmax sums to 1: a head that has nothing to add must still put its mass somewhere, and parks it on a cheap key
// (BOS, [CLS], [SEP]) — the "no-op" that grows outliers. softmax_1 and clipped softmax let a row sum to less (to 0
// for a head that abstains). Per point: the mean row mass, the share of rows with mass below one half, and the mean
// probability on the first key (BOS / [CLS] / the class token).
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
};

class AttentionUse {
 public:
  // probabilities: ... x T_q x T_k (one row per query; NaN rows count with their NaN mass).
  void add(const std::string& point, const at::Tensor& probabilities);
  std::vector<AttentionUsePoint> points() const;  // in the order first seen

 private:
  struct Sums {
    int64_t rows = 0, low_rows = 0;
    double mass = 0, first_key = 0;
  };
  std::vector<std::string> order_;
  std::map<std::string, Sums> sums_;
};

}  // namespace outeffhop::analysis
