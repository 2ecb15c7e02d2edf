// CUDA implementations of the sparse maps and their backward ops: the ATen compositions of src/core (sort-based
// sparsemax and 1.5-entmax, bisection for alpha-entmax) and the backward formula, run on the GPU. No custom kernels
// yet; these make every association of the Hopfield layers and STanHop-Net usable on a GPU.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../core/composites.h"
#include "rows.h"
#include "sparse_maps_common.h"

namespace outeffhop {
namespace {

// The backward formula in the compute type (float32 for half inputs), returned in out's type.
std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad_out, const at::Tensor& out, const at::Tensor& x,
                                            const at::Tensor& alpha, int64_t dim, const char* op) {
  TORCH_CHECK(grad_out.sizes() == out.sizes(), op, ": grad_out shape ", grad_out.sizes(), " differs from out shape ",
              out.sizes());
  const auto type = detail::compute_type(out);
  auto [gx, ga] =
      detail::sparse_map_backward_formula(grad_out.to(type), out.to(type), x.to(type), alpha.to(type), dim);
  return {gx.to(out.scalar_type()), ga};
}

}  // namespace

TORCH_LIBRARY_IMPL(outeffhop, CUDA, m) {
  m.impl("sparsemax", [](const at::Tensor& x, int64_t dim) {
    return detail::sparsemax_composite(x, detail::check_sparse_map(x, dim, "sparsemax"));
  });
  m.impl("entmax15", [](const at::Tensor& x, int64_t dim) {
    return detail::entmax15_composite(x, detail::check_sparse_map(x, dim, "entmax15"));
  });
  m.impl("entmax_bisect", [](const at::Tensor& x, const at::Tensor& alpha, int64_t dim, int64_t n_iter) {
    const int64_t d = detail::check_sparse_map(x, dim, "entmax_bisect");
    TORCH_CHECK(n_iter >= 1, "entmax_bisect: n_iter must be >= 1, got ", n_iter);
    detail::check_alpha(alpha, x, d);
    return detail::entmax_bisect_composite(x, alpha, d, n_iter);
  });
  // sparsemax and 1.5-entmax are alpha = 2 and 1.5; their x enters only the alpha gradient, which they do not return.
  m.impl("_sparsemax_backward", [](const at::Tensor& g, const at::Tensor& out, int64_t dim) {
    return std::get<0>(backward(g, out, out, at::full({}, 2.0, out.options()), dim, "_sparsemax_backward"));
  });
  m.impl("_entmax15_backward", [](const at::Tensor& g, const at::Tensor& out, int64_t dim) {
    return std::get<0>(backward(g, out, out, at::full({}, 1.5, out.options()), dim, "_entmax15_backward"));
  });
  m.impl("_entmax_bisect_backward", [](const at::Tensor& g, const at::Tensor& out, const at::Tensor& x,
                                       const at::Tensor& alpha, int64_t dim) {
    detail::check_alpha(alpha, out, detail::wrap_dim(dim, out.dim(), "_entmax_bisect_backward"));
    auto [gx, ga] = backward(g, out, x, alpha, dim, "_entmax_bisect_backward");
    return std::make_tuple(gx, ga.sum_to_size(alpha.sizes()).to(alpha.scalar_type()));
  });
}

}  // namespace outeffhop
