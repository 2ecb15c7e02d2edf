// CPU implementations of the sparse maps and their backward ops: dim moved last, row kernels in parallel over rows.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../kernels/cpu/sparse_maps_kernel.h"
#include "rows.h"
#include "sparse_maps_common.h"

namespace outeffhop {
namespace {

namespace cpu = kernels::cpu;

int64_t grain_rows(int64_t cols) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(cols, 1)); }

enum class Map { kSparsemax, kEntmax15, kEntmaxBisect };

at::Tensor forward(Map map, const at::Tensor& x, const at::Tensor* alpha, int64_t dim, int64_t n_iter,
                   const char* op) {
  const int64_t d = detail::check_sparse_map(x, dim, op);
  const auto type = detail::compute_type(x);
  const auto in = detail::to_rows(x, d, type);
  const auto alphas = alpha ? detail::alpha_rows(*alpha, x, d, type) : at::Tensor();
  auto out = at::empty_like(in.data);
  AT_DISPATCH_FLOATING_TYPES(type, "sparse_map_forward", [&] {
    kernels::SparseMapParams<scalar_t> p;
    p.in = in.data.const_data_ptr<scalar_t>();
    p.out = out.mutable_data_ptr<scalar_t>();
    p.rows = in.rows, p.cols = in.cols;
    if (alpha) p.alpha = alphas.const_data_ptr<scalar_t>();
    p.n_iter = n_iter;
    at::parallel_for(0, p.rows, grain_rows(p.cols), [&](int64_t b, int64_t e) {
      switch (map) {
        case Map::kSparsemax: cpu::sparsemax_forward(p, b, e); break;
        case Map::kEntmax15: cpu::entmax15_forward(p, b, e); break;
        case Map::kEntmaxBisect: cpu::entmax_bisect_forward(p, b, e); break;
      }
    });
  });
  return detail::from_rows(out, d, x.scalar_type());
}

// Returns (dL/dx, dL/dalpha shaped like alpha, or undefined without alpha).
std::tuple<at::Tensor, at::Tensor> backward(Map map, const at::Tensor& grad_out, const at::Tensor& out,
                                            const at::Tensor* x, const at::Tensor* alpha, int64_t dim,
                                            const char* op) {
  TORCH_CHECK(grad_out.sizes() == out.sizes(), op, ": grad_out shape ", grad_out.sizes(), " differs from out shape ",
              out.sizes());
  const int64_t d = detail::wrap_dim(dim, out.dim(), op);
  const auto type = detail::compute_type(out);
  const auto g = detail::to_rows(grad_out, d, type), y = detail::to_rows(out, d, type);
  const auto z = x ? detail::to_rows(*x, d, type).data : at::Tensor();
  const auto alphas = alpha ? detail::alpha_rows(*alpha, out, d, type) : at::Tensor();
  auto grad_in = at::empty_like(y.data);
  auto grad_alpha = alpha ? at::empty_like(alphas) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(type, "sparse_map_backward", [&] {
    kernels::SparseMapBackwardParams<scalar_t> p;
    p.grad_out = g.data.const_data_ptr<scalar_t>();
    p.out = y.data.const_data_ptr<scalar_t>();
    p.grad_in = grad_in.mutable_data_ptr<scalar_t>();
    p.rows = y.rows, p.cols = y.cols;
    if (alpha) {
      p.in = z.const_data_ptr<scalar_t>();
      p.alpha = alphas.const_data_ptr<scalar_t>();
      p.grad_alpha = grad_alpha.mutable_data_ptr<scalar_t>();
    }
    at::parallel_for(0, p.rows, grain_rows(p.cols), [&](int64_t b, int64_t e) {
      switch (map) {
        case Map::kSparsemax: cpu::sparsemax_backward(p, b, e); break;
        case Map::kEntmax15: cpu::entmax15_backward(p, b, e); break;
        case Map::kEntmaxBisect: cpu::entmax_bisect_backward(p, b, e); break;
      }
    });
  });
  at::Tensor ga;
  if (alpha) {
    ga = detail::from_rows(grad_alpha, d, alpha->scalar_type()).sum_to_size(alpha->sizes());
  }
  return {detail::from_rows(grad_in, d, out.scalar_type()), ga};
}

}  // namespace

TORCH_LIBRARY_IMPL(outeffhop, CPU, m) {
  m.impl("sparsemax", [](const at::Tensor& x, int64_t dim) {
    return forward(Map::kSparsemax, x, nullptr, dim, 0, "sparsemax");
  });
  m.impl("entmax15", [](const at::Tensor& x, int64_t dim) {
    return forward(Map::kEntmax15, x, nullptr, dim, 0, "entmax15");
  });
  m.impl("entmax_bisect", [](const at::Tensor& x, const at::Tensor& alpha, int64_t dim, int64_t n_iter) {
    TORCH_CHECK(n_iter >= 1, "entmax_bisect: n_iter must be >= 1, got ", n_iter);
    return forward(Map::kEntmaxBisect, x, &alpha, dim, n_iter, "entmax_bisect");
  });
  m.impl("_sparsemax_backward", [](const at::Tensor& g, const at::Tensor& out, int64_t dim) {
    return std::get<0>(backward(Map::kSparsemax, g, out, nullptr, nullptr, dim, "_sparsemax_backward"));
  });
  m.impl("_entmax15_backward", [](const at::Tensor& g, const at::Tensor& out, int64_t dim) {
    return std::get<0>(backward(Map::kEntmax15, g, out, nullptr, nullptr, dim, "_entmax15_backward"));
  });
  m.impl("_entmax_bisect_backward", [](const at::Tensor& g, const at::Tensor& out, const at::Tensor& x,
                                       const at::Tensor& alpha, int64_t dim) {
    return backward(Map::kEntmaxBisect, g, out, &x, &alpha, dim, "_entmax_bisect_backward");
  });
}

}  // namespace outeffhop
