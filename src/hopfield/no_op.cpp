// No-op classification of memories (paper section 2.2, Appendix B.1): flagged outliers leave Xi and become the
// class vector Omega, orthogonal to every extended query, which adds exp(0) = 1 per class vector to the normaliser.
#include <ATen/ATen.h>

#include "outeffhop/hopfield.h"

namespace outeffhop {

NoOpMemories classify_no_op(const at::Tensor& memories, const at::Tensor& is_outlier, NoOpClassVectors classes) {
  TORCH_CHECK(memories.dim() == 2, "classify_no_op: memories must be 2-D (M x d), got ", memories.sizes());
  TORCH_CHECK(is_outlier.dim() == 1 && is_outlier.size(0) == memories.size(0) &&
                  is_outlier.scalar_type() == at::kBool,
              "classify_no_op: is_outlier must be a bool vector of length M = ", memories.size(0), ", got ",
              is_outlier.scalar_type(), " of shape ", is_outlier.sizes());
  NoOpMemories out;
  const auto flags = is_outlier.to(at::kCPU).contiguous();
  const bool* f = flags.const_data_ptr<bool>();
  for (int64_t i = 0; i < memories.size(0); ++i) (f[i] ? out.outliers : out.kept).push_back(i);
  TORCH_CHECK(!out.kept.empty(), "classify_no_op: all ", memories.size(0),
              " memories are flagged as no-op outliers; nothing is left to retrieve");
  const auto idx = at::tensor(out.kept, at::TensorOptions().dtype(at::kLong)).to(memories.device());
  out.memories = memories.index_select(0, idx);
  // Shared: the paper's single Omega, present whether or not anything was flagged (its zero-energy point, Remark 2.2).
  // Distinct: one Omega_C per outlier (Remark 2.3), softmax_K; with no outliers that is plain softmax.
  out.n = classes == NoOpClassVectors::kShared ? 1.0 : static_cast<double>(out.outliers.size());
  return out;
}

at::Tensor flag_dissimilar(const at::Tensor& memories, double threshold) {
  TORCH_CHECK(memories.dim() == 2 && memories.size(0) >= 1, "flag_dissimilar: memories must be M x d with M >= 1, got ",
              memories.sizes());
  TORCH_CHECK(threshold >= -1 && threshold <= 1, "flag_dissimilar: threshold is a cosine similarity in [-1, 1], got ",
              threshold);
  const int64_t m = memories.size(0);
  if (m == 1) return at::zeros({1}, memories.options().dtype(at::kBool));  // nothing to compare against
  const auto unit = memories.to(at::kDouble) / memories.to(at::kDouble).norm(2, -1, true).clamp_min(1e-12);
  auto sim = at::matmul(unit, unit.t());
  sim.fill_diagonal_(-2.0);  // below any cosine: a memory is not compared with itself
  return std::get<0>(sim.max(-1)) < threshold;
}

RetrieveResult retrieve(const NoOpMemories& mem, const at::Tensor& x, double beta, int64_t max_steps, double eps) {
  return hopfield_retrieve(x, mem.memories, beta, mem.n, max_steps, eps);
}

at::Tensor energy(const NoOpMemories& mem, const at::Tensor& x, double beta) {
  return hopfield_energy(x, mem.memories, beta, mem.n);
}

}  // namespace outeffhop
