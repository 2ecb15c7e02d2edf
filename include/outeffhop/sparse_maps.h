// Sparse probability maps, the associations of the sparse and generalized-sparse Hopfield baselines: sparsemax,
// 1.5-entmax and alpha-entmax. They call the registered torch ops (outeffhop::sparsemax, ...) and are differentiable
// (entmax_bisect also in alpha). Rows of only -inf give zeros; a NaN in a row gives a NaN row.
#pragma once
#include <ATen/core/Tensor.h>

namespace outeffhop {

// Euclidean projection of x onto the probability simplex along `dim`: max(x - tau, 0) (Martins & Astudillo 2016).
at::Tensor sparsemax(const at::Tensor& x, int64_t dim = -1);

// 1.5-entmax along `dim`, exact (sort-based): max(x/2 - tau, 0)^2 (Peters et al. 2019).
at::Tensor entmax15(const at::Tensor& x, int64_t dim = -1);

// alpha-entmax along `dim`: max((alpha - 1) x - tau, 0)^(1/(alpha - 1)), renormalised, with tau found in at most
// n_iter safeguarded Newton steps on the bisection bracket. For alpha <= 2 the mass is convex in tau and Newton
// converges to double precision in about 4-8 steps; for alpha > 2 the safeguard bisects more and may need all 50.
// alpha > 1, broadcastable to x with size 1 along `dim` (one alpha per row, or a scalar tensor). alpha = 2 is
// sparsemax, 1.5 is entmax15, and alpha -> 1 approaches softmax.
at::Tensor entmax_bisect(const at::Tensor& x, const at::Tensor& alpha, int64_t dim = -1, int64_t n_iter = 50);

namespace reference {
// float64 oracle for all three: bisection on tau with plain ATen ops (200 steps), independent of the kernels'
// sort-based algorithms. alpha: a double, or use the tensor overload for per-row alphas.
at::Tensor entmax_by_bisection(const at::Tensor& x, const at::Tensor& alpha, int64_t dim);
}  // namespace reference

}  // namespace outeffhop
