// Associative-memory evaluation helpers (see outeffhop/memory.h).
#include <ATen/ATen.h>

#include <stdexcept>

#include "outeffhop/hopfield.h"
#include "outeffhop/memory.h"
#include "outeffhop/softmax.h"

namespace outeffhop::memory {

Corruption parse_corruption(const std::string& name) {
  if (name == "half") return Corruption::kBottomHalf;
  if (name == "noise") return Corruption::kGaussian;
  throw std::invalid_argument("unknown corruption '" + name + "' (expected half or noise)");
}

Encoding parse_encoding(const std::string& name) {
  if (name == "raw") return Encoding::kRaw;
  if (name == "centered") return Encoding::kCenteredUnit;
  throw std::invalid_argument("unknown encoding '" + name + "' (expected raw or centered)");
}

at::Tensor to_unit_range(const at::Tensor& images) { return images.to(at::kFloat) / 255.0; }

at::Tensor corrupt(const at::Tensor& images01, Corruption how, double sigma, const at::Tensor& fill) {
  TORCH_CHECK(images01.dim() == 4, "corrupt: images must be N x C x H x W, got ", images01.sizes());
  if (how == Corruption::kBottomHalf) {
    auto out = images01.clone();
    const int64_t h = images01.size(2);
    auto bottom = out.narrow(2, h / 2, h - h / 2);
    if (fill.defined()) {
      bottom.copy_(fill.narrow(1, h / 2, h - h / 2).expand_as(bottom));
    } else {
      bottom.zero_();
    }
    return out;
  }
  TORCH_CHECK(sigma >= 0, "corrupt: sigma must be >= 0, got ", sigma);
  return (images01 + sigma * at::randn_like(images01)).clamp(0, 1);
}

Encoder Encoder::fit(const at::Tensor& images01, Encoding encoding) {
  Encoder e;
  e.encoding = encoding;
  e.mean = images01.mean(0);
  return e;
}

at::Tensor Encoder::neutral_fill() const {
  return encoding == Encoding::kRaw ? at::zeros_like(mean) : mean;
}

at::Tensor Encoder::encode(const at::Tensor& images01) const {
  auto x = images01.flatten(1).to(at::kFloat);
  if (encoding == Encoding::kRaw) return x;
  x = x - mean.flatten();
  return x / x.norm(2, -1, true).clamp_min(1e-12);
}

RetrievalScore evaluate_retrieval(const at::Tensor& memories, const at::Tensor& queries, const at::Tensor& targets,
                                  double beta, double n, int64_t steps) {
  RetrievalScore s;
  // Step one update at a time so that the energy can be checked after each (Lemma 2.1).
  auto state = queries;
  auto energy = hopfield_energy(state, memories, beta, n);
  auto applied = at::zeros({queries.size(0)}, at::kLong);
  for (int64_t t = 0; t < steps; ++t) {
    auto r = hopfield_retrieve(state, memories, beta, n, 1, 0.0);
    applied += r.steps;
    state = r.state;
    const auto next_energy = hopfield_energy(state, memories, beta, n);
    // A relative slack for float32 rounding: CCCP guarantees descent in exact arithmetic.
    const auto slack = 1e-5 * (energy.abs() + 1);
    s.energy_monotone = s.energy_monotone && (next_energy <= energy + slack).all().item<bool>();
    energy = next_energy;
  }
  const auto own = memories.index_select(0, targets);
  const auto unit = [](const at::Tensor& t) { return t / t.norm(2, -1, true).clamp_min(1e-12); };
  const auto cos_all = at::matmul(unit(state), unit(memories).t());  // B x M
  s.top1 = (cos_all.argmax(-1) == targets).to(at::kDouble).mean().item<double>();
  s.mean_cosine = (unit(state) * unit(own)).sum(-1).mean().item<double>();
  s.mean_sq_error = (state - own).pow(2).mean(-1).mean().item<double>();
  // Mass that one more update would put on the no-op key Omega: how much the model abstains at the end state.
  s.null_mass = null_mass(beta * at::matmul(state, memories.t()), n, -1).mean().item<double>();
  s.mean_steps = applied.to(at::kDouble).mean().item<double>();
  s.relative_norm = (state.norm(2, -1) / memories.norm(2, -1).mean()).mean().item<double>();
  return s;
}

}  // namespace outeffhop::memory
