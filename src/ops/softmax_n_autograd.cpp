// Autograd for softmax_n: the forward and backward each dispatch to the device kernels; when a graph of the backward
// is requested (double backward), the backward is written with differentiable ATen ops instead.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>


namespace outeffhop {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor softmax_n_backward_dispatch(const at::Tensor& grad_out, const at::Tensor& out, int64_t dim) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("outeffhop::_softmax_n_backward", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t)>();
  return op.call(grad_out, out, dim);
}

class SoftmaxNFunction : public torch::autograd::Function<SoftmaxNFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double n, int64_t dim) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("outeffhop::softmax_n", "")
                         .typed<at::Tensor(const at::Tensor&, double, int64_t)>();
    auto out = op.call(x, n, dim);
    ctx->save_for_backward({out});
    ctx->saved_data["dim"] = dim;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto out = ctx->get_saved_variables()[0];
    const int64_t dim = ctx->saved_data["dim"].toInt();
    const auto& g = grad_outputs[0];
    at::Tensor grad_x;
    if (at::GradMode::is_enabled()) {  // create_graph=True: keep the backward differentiable
      const int64_t d = out.dim() == 0 ? 0 : (dim < 0 ? dim + out.dim() : dim);
      grad_x = out.dim() == 0 ? out * (g - out * g) : out * (g - (out * g).sum(d, /*keepdim=*/true));
    } else {
      grad_x = softmax_n_backward_dispatch(g, out, dim);
    }
    return {grad_x, at::Tensor(), at::Tensor()};
  }
};

at::Tensor softmax_n_autograd(const at::Tensor& x, double n, int64_t dim) {
  return SoftmaxNFunction::apply(x, n, dim);
}

}  // namespace

TORCH_LIBRARY_IMPL(outeffhop, Autograd, m) { m.impl("softmax_n", &softmax_n_autograd); }

}  // namespace outeffhop
