// CUDA softmax_n forward and backward, one block per row, side by side (see softmax_n_kernel.cuh).
#include <cmath>

#include "softmax_n_kernel.cuh"

namespace outeffhop::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Block-wide reduction of one value per thread (blockDim.x a multiple of 32); every thread gets the result.
template <typename Acc, typename Op>
__device__ Acc block_reduce(Acc v, Op op, Acc identity, Acc* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / 32 ? scratch[lane] : identity;
    for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  const Acc out = scratch[0];
  __syncthreads();  // scratch is reused by the next reduction
  return out;
}

struct Max {
  template <typename A>
  __device__ A operator()(A a, A b) const { return a > b ? a : b; }
};
struct Sum {
  template <typename A>
  __device__ A operator()(A a, A b) const { return a + b; }
};

// float rows accumulate in float, double rows in double.
template <typename T>
__global__ void forward_kernel(SoftmaxNParams<T> p) {
  using Acc = T;
  __shared__ Acc scratch[32];
  const T* z = p.in + blockIdx.x * p.cols;
  T* out = p.out + blockIdx.x * p.cols;
  const Acc log_n = p.n > 0 ? static_cast<Acc>(log(p.n)) : -INFINITY;
  Acc m = log_n, nan_count = 0, pos_inf = 0;
  for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) {
    const Acc v = z[j];
    nan_count += isnan(v) ? 1 : 0;
    pos_inf += (isinf(v) && v > 0) ? 1 : 0;
    m = v > m ? v : m;
  }
  m = block_reduce(m, Max{}, static_cast<Acc>(-INFINITY), scratch);
  nan_count = block_reduce(nan_count, Sum{}, Acc(0), scratch);
  pos_inf = block_reduce(pos_inf, Sum{}, Acc(0), scratch);
  if (nan_count > 0) {
    for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) out[j] = NAN;
    return;
  }
  if (pos_inf > 0) {
    for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) out[j] = (isinf(z[j]) && z[j] > 0) ? 1 / pos_inf : 0;
    return;
  }
  if (isinf(m)) m = 0;  // n = 0 and every logit -inf: the row is defined as zeros
  Acc s = 0;
  for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) s += exp(static_cast<Acc>(z[j]) - m);
  s = block_reduce(s, Sum{}, Acc(0), scratch);
  const Acc denom = s + (p.n > 0 ? exp(log_n - m) : 0);
  const Acc inv = denom > 0 ? 1 / denom : 0;
  for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) out[j] = exp(static_cast<Acc>(z[j]) - m) * inv;
}

template <typename T>
__global__ void backward_kernel(SoftmaxNBackwardParams<T> p) {
  __shared__ T scratch[32];
  const T* g = p.grad_out + blockIdx.x * p.cols;
  const T* y = p.out + blockIdx.x * p.cols;
  T* gi = p.grad_in + blockIdx.x * p.cols;
  T dot = 0;
  for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) dot += y[j] * g[j];
  dot = block_reduce(dot, Sum{}, T(0), scratch);
  for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) gi[j] = y[j] * (g[j] - dot);
}

}  // namespace

template <typename T>
void softmax_n_forward(const SoftmaxNParams<T>& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return;
  forward_kernel<T><<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p);
}

template <typename T>
void softmax_n_backward(const SoftmaxNBackwardParams<T>& p, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return;
  backward_kernel<T><<<static_cast<unsigned>(p.rows), kThreads, 0, stream>>>(p);
}

template void softmax_n_forward<float>(const SoftmaxNParams<float>&, cudaStream_t);
template void softmax_n_forward<double>(const SoftmaxNParams<double>&, cudaStream_t);
template void softmax_n_backward<float>(const SoftmaxNBackwardParams<float>&, cudaStream_t);
template void softmax_n_backward<double>(const SoftmaxNBackwardParams<double>&, cudaStream_t);

}  // namespace outeffhop::kernels::cuda
