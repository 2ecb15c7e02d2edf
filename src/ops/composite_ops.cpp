// Registrations of the ops that are compositions of other ops (bodies in src/core/): autograd differentiates
// through them and they run wherever the ops they call run.
#include <torch/library.h>

#include "../core/composites.h"
#include "outeffhop/attention.h"

namespace outeffhop {

TORCH_LIBRARY_IMPL(outeffhop, CompositeImplicitAutograd, m) {
  m.impl("clipped_softmax_n", &detail::clipped_softmax_n_composite);
  m.impl("attention", [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& sink, double n,
                         bool causal, std::optional<double> scale) {
    return std::get<0>(attention_lse(q, k, v, AttentionOptions{mask, sink, n, causal, scale}));
  });
  m.impl("kurtosis", &detail::kurtosis_composite);
  m.impl("inf_norm", &detail::inf_norm_composite);
  m.impl("fake_quant_asym", &detail::fake_quant_asym_composite);
  m.impl("fake_quant_sym", &detail::fake_quant_sym_composite);
  m.impl("hopfield_energy", &detail::hopfield_energy_composite);
  m.impl("hopfield_retrieve", &detail::hopfield_retrieve_composite);
}

}  // namespace outeffhop
