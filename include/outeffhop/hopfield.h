// The outlier-efficient modern Hopfield model (Hu et al. 2024, section 2): energy, retrieval dynamics and the no-op
// classification of memories.
#pragma once
#include <ATen/core/Tensor.h>
#include <cstdint>
#include <vector>

namespace outeffhop {

// H(x) = -lse_n(beta, Xi^T x) + 1/2 <x, x>, lse_n(beta, z) = beta^-1 log(n + sum_mu exp(beta z_mu)).
// x: B x d queries, memories: M x d stored patterns (one per row) -> B energies. beta > 0, n >= 0.
at::Tensor hopfield_energy(const at::Tensor& x, const at::Tensor& memories, double beta, double n = 1.0);

struct RetrieveResult {
  at::Tensor state;  // B x d: the retrieved patterns
  at::Tensor steps;  // B (int64): updates applied to each query
};

// Iterates x <- Xi softmax_n(beta Xi^T x) up to max_steps times; a query stops once ||x_{t+1} - x_t|| <= eps
// (that last update is counted and kept). max_steps = 0 returns x unchanged. Differentiable in x and memories.
RetrieveResult hopfield_retrieve(const at::Tensor& x, const at::Tensor& memories, double beta, double n = 1.0,
                                 int64_t max_steps = 1, double eps = 0.0);

// ---- No-op classification (paper section 2.2 and Appendix B.1) ----
// Memories flagged as no-op outliers are mapped to the class vector Omega = (0, ..., 0, C), whose inner product with
// every (extended) query is 0: they leave Xi and contribute exp(beta * 0) = 1 each to the normaliser instead.
enum class NoOpClassVectors {
  kShared,    // one Omega for every outlier (the paper's choice): softmax_1 over the remaining memories
  kDistinct,  // one Omega_C per outlier, distinct C's (Remark 2.3): softmax_K with K = number of outliers
};

struct NoOpMemories {
  at::Tensor memories;       // (M - K) x d: the "op" memories that stay in Xi
  std::vector<int64_t> kept;     // their row indices in the original memories
  std::vector<int64_t> outliers;  // the flagged rows
  double n = 1.0;            // mass of Omega in the normaliser: 1 (shared) or K (distinct)
};

// Ad-hoc assignment: `is_outlier` is a bool vector of length M.
NoOpMemories classify_no_op(const at::Tensor& memories, const at::Tensor& is_outlier,
                            NoOpClassVectors classes = NoOpClassVectors::kShared);

// Similarity thresholding (Appendix B.1): a memory whose cosine similarity to every other memory stays below
// `threshold` is a no-op outlier.
at::Tensor flag_dissimilar(const at::Tensor& memories, double threshold);

// Retrieval and energy over the classified memories: x: B x d.
RetrieveResult retrieve(const NoOpMemories& mem, const at::Tensor& x, double beta, int64_t max_steps = 1,
                        double eps = 0.0);
at::Tensor energy(const NoOpMemories& mem, const at::Tensor& x, double beta);

namespace reference {
// float64 composite oracles.
at::Tensor hopfield_energy(const at::Tensor& x, const at::Tensor& memories, double beta, double n);
at::Tensor hopfield_update(const at::Tensor& x, const at::Tensor& memories, double beta, double n);  // one step
}  // namespace reference

}  // namespace outeffhop
