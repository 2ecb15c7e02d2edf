// Autograd for the sparse maps: forward and backward dispatch to the device kernels; when a graph of the backward is
// requested (double backward), the backward is written with differentiable ATen ops instead.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "../core/composites.h"

namespace outeffhop {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using UnaryMap = at::Tensor(const at::Tensor&, int64_t);
using UnaryBackward = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t);

c10::TypedOperatorHandle<UnaryMap> unary_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<UnaryMap>();
}

// sparsemax (alpha = 2) and entmax15 (alpha = 1.5): maps without parameters.
class UnarySparseMap : public torch::autograd::Function<UnarySparseMap> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t dim, bool is_sparsemax) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto sparsemax = unary_op("outeffhop::sparsemax"), entmax15 = unary_op("outeffhop::entmax15");
    auto out = (is_sparsemax ? sparsemax : entmax15).call(x, dim);
    ctx->save_for_backward({x, out});
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["sparsemax"] = is_sparsemax;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const int64_t dim = ctx->saved_data["dim"].toInt();
    const bool is_sparsemax = ctx->saved_data["sparsemax"].toBool();
    at::Tensor grad_x;
    if (at::GradMode::is_enabled()) {  // create_graph=True: keep the backward differentiable
      const auto alpha = at::full({}, is_sparsemax ? 2.0 : 1.5, saved[1].options());
      grad_x = std::get<0>(detail::sparse_map_backward_formula(grads[0], saved[1], saved[0], alpha, dim));
    } else {
      static const auto sparsemax_bw = c10::Dispatcher::singleton()
                                           .findSchemaOrThrow("outeffhop::_sparsemax_backward", "")
                                           .typed<UnaryBackward>();
      static const auto entmax15_bw = c10::Dispatcher::singleton()
                                          .findSchemaOrThrow("outeffhop::_entmax15_backward", "")
                                          .typed<UnaryBackward>();
      grad_x = (is_sparsemax ? sparsemax_bw : entmax15_bw).call(grads[0], saved[1], dim);
    }
    return {grad_x, at::Tensor(), at::Tensor()};
  }
};

class EntmaxBisect : public torch::autograd::Function<EntmaxBisect> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& alpha, int64_t dim,
                            int64_t n_iter) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("outeffhop::entmax_bisect", "")
                               .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>();
    auto out = op.call(x, alpha, dim, n_iter);
    ctx->save_for_backward({x, alpha, out});
    ctx->saved_data["dim"] = dim;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &alpha = saved[1], &out = saved[2];
    const int64_t dim = ctx->saved_data["dim"].toInt();
    if (at::GradMode::is_enabled()) {
      auto [gx, ga] = detail::sparse_map_backward_formula(grads[0], out, x, alpha, dim);
      return {gx, ga.sum_to_size(alpha.sizes()), at::Tensor(), at::Tensor()};
    }
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("outeffhop::_entmax_bisect_backward", "")
                               .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                         const at::Tensor&, const at::Tensor&,
                                                                         int64_t)>();
    auto [gx, ga] = op.call(grads[0], out, x, alpha, dim);
    return {gx, ga, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(outeffhop, Autograd, m) {
  m.impl("sparsemax", [](const at::Tensor& x, int64_t dim) { return UnarySparseMap::apply(x, dim, true); });
  m.impl("entmax15", [](const at::Tensor& x, int64_t dim) { return UnarySparseMap::apply(x, dim, false); });
  m.impl("entmax_bisect", [](const at::Tensor& x, const at::Tensor& alpha, int64_t dim, int64_t n_iter) {
    return EntmaxBisect::apply(x, alpha, dim, n_iter);
  });
}

}  // namespace outeffhop
