// Where a model's largest activations sit, beyond the paper's two numbers: for every observed module, the entry of
// largest |x| (which evaluated sample, token position and hidden dimension) and the token position at which most
// samples have their own largest |x|. Outliers of "no-op" attention concentrate on a few hidden dimensions at one
// kind of token (BOS, [SEP], a background patch); this shows whether a model's do.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace outeffhop::analysis {

struct ActivationPeak {
  std::string module;
  double value = 0;  // the largest |x| seen
  int64_t sample = 0, position = 0, dim = 0;  // where: sample counted over every observed batch, in order
  int64_t usual_position = 0;   // the position where most samples have their own largest |x|
  double usual_share = 0;       // the share of samples whose largest |x| is there
  int64_t samples = 0;
};

class ActivationPeaks {
 public:
  // x: B x ... x d. The middle dims are flattened into positions (a token, a patch, a series' segment); B x d has
  // a single position.
  void add(const std::string& module, const at::Tensor& x);
  std::vector<ActivationPeak> peaks() const;  // in the order first seen

 private:
  struct Entry {
    ActivationPeak peak;
    std::vector<int64_t> position_counts;
  };
  std::vector<std::string> order_;
  std::map<std::string, Entry> entries_;
};

}  // namespace outeffhop::analysis
