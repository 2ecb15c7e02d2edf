// Associative-memory evaluation: turn images into patterns, corrupt queries, retrieve, and score the result.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace outeffhop::memory {

enum class Corruption {
  kBottomHalf,  // the bottom half of every image is set to 0 (the paper's capacity experiment)
  kGaussian,    // x + N(0, sigma^2), clamped to [0, 1]
};
Corruption parse_corruption(const std::string& name);  // "half" | "noise"

// images: N x C x H x W uint8 -> N x C x H x W float in [0, 1].
at::Tensor to_unit_range(const at::Tensor& images);
// images01: N x C x H x W in [0, 1] -> corrupted copy. Masked pixels take the value of `fill` (C x H x W, e.g. the
// mean image, so that a centred encoding sees "unknown" as 0) or 0 when `fill` is undefined. Uses the global
// generator (seed it for repeatability).
at::Tensor corrupt(const at::Tensor& images01, Corruption how, double sigma, const at::Tensor& fill = {});

// How images become patterns: raw flattened pixels, or centred on the memories' mean image and scaled to unit norm
// (so that beta means the same for every dataset).
enum class Encoding { kRaw, kCenteredUnit };
Encoding parse_encoding(const std::string& name);  // "raw" | "centered"
struct Encoder {
  Encoding encoding = Encoding::kCenteredUnit;
  at::Tensor mean;  // C x H x W, the memories' mean image (kCenteredUnit)
  static Encoder fit(const at::Tensor& images01, Encoding encoding);
  at::Tensor encode(const at::Tensor& images01) const;  // N x C x H x W -> N x d float32
  at::Tensor neutral_fill() const;  // the pixel values an encoding reads as "no information" (C x H x W)
};

struct RetrievalScore {
  double top1 = 0;           // fraction of queries whose nearest memory (cosine) to the output is their own
  double mean_cosine = 0;    // mean cosine(output, own memory)
  double mean_sq_error = 0;  // mean over queries of ||output - own memory||^2 / d
  double null_mass = 0;      // mean mass on the no-op key at the last step (0 for softmax)
  double mean_steps = 0;     // mean updates applied
  double relative_norm = 0;  // mean output norm over the mean memory norm: ~0 when the model abstains
  bool energy_monotone = true;  // no query's energy rose between steps (Lemma 2.1), checked step by step
};

// Retrieves queries (B x d) from memories (M x d) with softmax_n for up to `steps` steps and scores the outputs
// against memories[targets] (targets: B int64).
RetrievalScore evaluate_retrieval(const at::Tensor& memories, const at::Tensor& queries, const at::Tensor& targets,
                                  double beta, double n, int64_t steps);

}  // namespace outeffhop::memory
