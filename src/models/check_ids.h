// Token ids checked against the size of the embedding they index, before the lookup: an id out of range is a message
// naming the model and the range, not LibTorch's "index out of range in self".
#pragma once
#include <ATen/ATen.h>

namespace outeffhop::models {

inline void check_ids_in_range(const at::Tensor& ids, int64_t size, const char* what) {
  if (ids.numel() == 0) return;
  const auto [low, high] = at::aminmax(ids);
  const auto bounds = at::stack({low, high}).to(at::kCPU);  // one device sync per forward, not two
  const auto lo = bounds[0].item<int64_t>(), hi = bounds[1].item<int64_t>();
  TORCH_CHECK(lo >= 0 && hi < size, what, " must lie in [0, ", size, "), got values from ", lo, " to ", hi);
}

}  // namespace outeffhop::models
