// The softmax family of OutEffHop: softmax_n (softmax_1 is n = 1, softmax is n = 0), its clipped variant and the
// null mass a head abstains with. These call the registered torch ops (outeffhop::softmax_n, ...), so they run the
// CPU or CUDA kernel that matches the input and are differentiable.
#pragma once
#include <ATen/core/Tensor.h>

namespace outeffhop {

// exp(z_i) / (n + sum_j exp(z_j)) along `dim`; the virtual no-op key has logit log n and value 0.
// Stable for every input: fully -inf rows give zeros (also for n = 0), NaN in a row gives a NaN row.
// x: any shape, floating dtype (float16/bfloat16 are computed in float32). n >= 0, finite.
at::Tensor softmax_n(const at::Tensor& x, double n = 1.0, int64_t dim = -1);

// clip((eta - gamma) * softmax_n(x) + gamma, 0, 1) (Bondarenko et al. 2023; n = 0 is their clipped softmax).
at::Tensor clipped_softmax_n(const at::Tensor& x, double n, double gamma, double eta, int64_t dim = -1);

// 1 - sum_i softmax_n(x)_i = n / (n + sum_j exp(x_j)) along `dim` (dim removed): how much the head abstains.
at::Tensor null_mass(const at::Tensor& x, double n = 1.0, int64_t dim = -1);

namespace reference {
// float64 composite oracles (plain ATen ops, no custom kernel): used by tests and as readable definitions.
at::Tensor softmax_n(const at::Tensor& x, double n, int64_t dim);
// The identity softmax_n(z) = softmax([z, log n])[..., :-1], computed with ATen's own softmax.
at::Tensor softmax_n_via_extra_logit(const at::Tensor& x, double n, int64_t dim);
}  // namespace reference

}  // namespace outeffhop
