// Outlier metrics of activations exactly as the paper's tables computed them (REFERENCE.md §3) and the W8A8
// quantizers (§4). They call the registered torch ops (outeffhop::kurtosis, ...).
#pragma once
#include <ATen/core/Tensor.h>

namespace outeffhop {

// Pearson kurtosis per sample: x is B x ..., each sample flattened to a row r (at least 2 values);
// mean((r - mean r)^4) / (std_unbiased(r)^4 + 1e-6), accumulated in float64. A Gaussian gives 3. Returns B.
at::Tensor kurtosis(const at::Tensor& x);

// max |r| per sample (x: B x ..., flattened per sample). Returns B.
at::Tensor inf_norm(const at::Tensor& x);

// Asymmetric (activation) fake quantization with a static range: the range is first extended to contain 0, then
// delta = (xmax - xmin) / (2^bits - 1), z = round(-xmin / delta), x_hat = delta (clamp(round(x / delta) + z, 0,
// 2^bits - 1) - z), rounding half to even. A zero-width range gives zeros. Gradient: straight-through inside the
// range, 0 outside. bits in 2..16.
at::Tensor fake_quant_asym(const at::Tensor& x, double xmin, double xmax, int64_t bits = 8);

// The (delta, zero point) fake_quant_asym uses for a range; delta = 0 for a zero-width range. For real integer
// kernels that must land on the same grid.
struct AffineQuantParams {
  double delta = 0;
  int64_t zero_point = 0;
};
AffineQuantParams asym_quant_params(double xmin, double xmax, int64_t bits = 8);

// Symmetric per-tensor (weight) fake quantization with the current min-max range: delta = max|w| / (2^(bits-1) - 1),
// w_hat = delta clamp(round(w / delta), -2^(bits-1), 2^(bits-1) - 1). All-zero w gives zeros. Straight-through
// gradient. bits in 2..16.
at::Tensor fake_quant_sym(const at::Tensor& w, int64_t bits = 8);

}  // namespace outeffhop
