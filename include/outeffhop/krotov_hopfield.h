// The binary dense associative memory of Krotov & Hopfield (2016): patterns in {-1, +1}^d, energy
// E(s) = -sum_mu F(xi_mu . s) with the rectified polynomial F(x) = max(x, 0)^n, and asynchronous sign updates
// s_i <- sign(sum_mu [F(xi_mu,i + h_mu,-i) - F(-xi_mu,i + h_mu,-i)]), h_mu,-i = sum_{j != i} xi_mu,j s_j,
// which never raise the energy. A separate model from the continuous (softmax) Hopfield networks.
#pragma once
#include <ATen/core/Tensor.h>

namespace outeffhop {

struct KrotovHopfieldResult {
  at::Tensor state;   // B x d in {-1, +1}
  at::Tensor sweeps;  // B (int64): sweeps until no neuron changed (or max_sweeps)
};

// patterns: M x d, queries: B x d, both {-1, +1} (any floating dtype). Neurons are updated in order 0..d-1 in each
// sweep, for every query at once. power n >= 2.
KrotovHopfieldResult krotov_hopfield_retrieve(const at::Tensor& patterns, const at::Tensor& queries,
                                              int64_t power = 10, int64_t max_sweeps = 10);

// E(s) per query (B), computed in float64 with F(x) = max(x / d, 0)^n (a positive rescaling of the energy that
// keeps x^n finite for d in the thousands; it does not change which states are lower).
at::Tensor krotov_hopfield_energy(const at::Tensor& patterns, const at::Tensor& states, int64_t power = 10);

}  // namespace outeffhop
