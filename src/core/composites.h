// Bodies of the ops that are compositions of other ops (registered as CompositeImplicitAutograd in src/ops/):
// autograd differentiates through them, and they run on any device the ops they call support.
#pragma once
#include <ATen/core/Tensor.h>
#include <optional>
#include <tuple>

namespace outeffhop::detail {

at::Tensor clipped_softmax_n_composite(const at::Tensor& x, double n, double gamma, double eta, int64_t dim);

std::tuple<at::Tensor, at::Tensor> attention_lse_composite(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v,
                                                           const std::optional<at::Tensor>& attn_mask,
                                                           const std::optional<at::Tensor>& sink, double n,
                                                           bool causal, std::optional<double> scale);

at::Tensor clipped_attention_composite(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const std::optional<at::Tensor>& attn_mask,
                                       const std::optional<at::Tensor>& sink, double n, double gamma, double eta,
                                       bool causal, std::optional<double> scale);
void check_clip(double gamma, double eta);

// Backward of the sparse maps (sparsemax: alpha = 2, entmax15: alpha = 1.5, entmax_bisect) as differentiable ATen
// ops: returns (dL/dx, dL/dalpha per row with `dim` kept). x: the forward's input; alpha broadcastable to out.
std::tuple<at::Tensor, at::Tensor> sparse_map_backward_formula(const at::Tensor& grad_out, const at::Tensor& out,
                                                               const at::Tensor& x, const at::Tensor& alpha,
                                                               int64_t dim);

// The sparse maps with ATen ops only, on any device (the CUDA registrations use them): sparsemax and 1.5-entmax by
// sorting (exact), alpha-entmax by n_iter bisection steps. Same contract as the ops: float16/bfloat16 computed in
// float32, rows of only -inf give zeros, a NaN in a row gives a NaN row. The caller checks the arguments.
at::Tensor sparsemax_composite(const at::Tensor& x, int64_t dim);
at::Tensor entmax15_composite(const at::Tensor& x, int64_t dim);
at::Tensor entmax_bisect_composite(const at::Tensor& x, const at::Tensor& alpha, int64_t dim, int64_t n_iter);

at::Tensor kurtosis_composite(const at::Tensor& x);
at::Tensor inf_norm_composite(const at::Tensor& x);
at::Tensor fake_quant_asym_composite(const at::Tensor& x, double xmin, double xmax, int64_t bits);
at::Tensor fake_quant_sym_composite(const at::Tensor& w, int64_t bits);

at::Tensor hopfield_energy_composite(const at::Tensor& x, const at::Tensor& memories, double beta, double n);

std::tuple<at::Tensor, at::Tensor> hopfield_retrieve_composite(const at::Tensor& x, const at::Tensor& memories,
                                                               double beta, double n, int64_t max_steps,
                                                               double eps);

}  // namespace outeffhop::detail
