// Builds without the CUDA toolkit: no fused CUDA attention (CUDA tensors, if any, take the composite).
#include <c10/util/Exception.h>

#include "attention_fused.h"

namespace outeffhop::detail {

bool cuda_fused_attention_supports(const AttentionArgs&) { return false; }

FusedForward cuda_fused_attention_forward(const AttentionArgs&) {
  TORCH_CHECK(false, "attention: this build of outeffhop has no CUDA kernels");
}

FusedGrads cuda_fused_attention_backward(const AttentionArgs&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const at::Tensor&) {
  TORCH_CHECK(false, "attention: this build of outeffhop has no CUDA kernels");
}

}  // namespace outeffhop::detail
