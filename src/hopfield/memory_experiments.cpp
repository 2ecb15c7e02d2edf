// Capacity and noise-robustness experiments under the UHN and UHop harnesses (see memory_experiments.h).
#include "outeffhop/memory_experiments.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "outeffhop/data.h"
#include "outeffhop/hopfield.h"
#include "outeffhop/krotov_hopfield.h"
#include "outeffhop/memory.h"
#include "outeffhop/softmax.h"
#include "outeffhop/sparse_maps.h"

namespace outeffhop::memory {
namespace {

constexpr int64_t kQueryChunk = 1024;  // queries per batched product: bounds memory at 10,000 memories

const std::vector<std::pair<const char*, Separation>> kSeparations = {
    {"softmax", Separation::kSoftmax},     {"softmax1", Separation::kSoftmax1},
    {"sparsemax", Separation::kSparsemax}, {"sparsemax-beta", Separation::kSparsemaxBeta},
    {"entmax15", Separation::kEntmax15},   {"entmax-alpha", Separation::kEntmaxAlpha},
    {"poly10", Separation::kPoly10}};

at::Tensor normalise_rows(const at::Tensor& x) {
  const auto total = x.sum(-1, true);
  return x / at::where(total > 0, total, at::ones_like(total));
}

// Queries for one point: the originals corrupted as the experiment and harness prescribe (global generator).
at::Tensor corrupt_queries(const at::Tensor& images01, const MemoryExperimentConfig& c, double sigma) {
  if (c.experiment == "noise") return at::clamp((images01 + sigma * at::randn_like(images01)).abs(), 0.0, 1.0);
  if (c.harness == Harness::kUhn) return corrupt(images01, Corruption::kBottomHalf, 0.0);  // bottom half zeroed
  return images01 * (at::rand_like(images01) >= 0.5);  // UHop: half of the pixels dropped
}

}  // namespace

Harness parse_harness(const std::string& name) {
  if (name == "uhn") return Harness::kUhn;
  if (name == "uhop") return Harness::kUhop;
  TORCH_CHECK(false, "unknown harness '", name, "'; known: uhn, uhop");
}

Separation parse_separation(const std::string& name) {
  for (const auto& [n, s] : kSeparations)
    if (name == n) return s;
  TORCH_CHECK(false, "unknown model '", name,
              "'; known: softmax, softmax1, sparsemax, sparsemax-beta, entmax15, entmax-alpha, poly10");
}

std::string separation_name(Separation s) {
  for (const auto& [n, sep] : kSeparations)
    if (sep == s) return n;
  return "?";
}

at::Tensor separate(Separation s, const at::Tensor& scores, const SeparationParams& p) {
  switch (s) {
    case Separation::kSoftmax: return softmax_n(scores * p.beta, 0.0, -1);
    case Separation::kSoftmax1: return softmax_n(scores * p.beta, 1.0, -1);
    case Separation::kSparsemax: return sparsemax(scores, -1);
    case Separation::kSparsemaxBeta: return sparsemax(scores * p.beta, -1);
    case Separation::kEntmax15: return entmax15(scores * p.beta, -1);
    case Separation::kEntmaxAlpha:
      return entmax_bisect(scores * p.beta, at::full({}, p.alpha, scores.options()), -1);
    case Separation::kPoly10: {  // relu(s)^10 is scale invariant once normalised: divide by the max first
      const auto r = at::relu(scores);
      const auto top = std::get<0>(r.max(-1, true));
      return normalise_rows((r / at::where(top > 0, top, at::ones_like(top))).pow(10));
    }
  }
  TORCH_CHECK(false, "unknown separation");
}

at::Tensor retrieve_uhn(const at::Tensor& memories, const at::Tensor& queries, Separation s,
                        const SeparationParams& params) {
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < queries.size(0); i += kQueryChunk) {
    const auto z = queries.narrow(0, i, std::min(kQueryChunk, queries.size(0) - i));
    const auto scores = normalise_rows(at::matmul(z, memories.t()));  // beta before this would cancel
    out.push_back(at::matmul(normalise_rows(separate(s, scores, params)), memories));
  }
  return at::cat(out);
}

at::Tensor retrieve_uhop(const at::Tensor& memories, const at::Tensor& queries, Separation s,
                         const SeparationParams& params, int64_t steps) {
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < queries.size(0); i += kQueryChunk) {
    auto x = queries.narrow(0, i, std::min(kQueryChunk, queries.size(0) - i));
    for (int64_t k = 0; k < steps; ++k) x = at::matmul(separate(s, at::matmul(x, memories.t()), params), memories);
    out.push_back(x);
  }
  return at::cat(out);
}

MemoryExperimentConfig with_defaults(MemoryExperimentConfig c, bool beta_given) {
  TORCH_CHECK(c.experiment == "capacity" || c.experiment == "noise", "unknown experiment '", c.experiment,
              "'; known: capacity, noise");
  const bool capacity = c.experiment == "capacity";
  if (c.sizes.empty())
    c.sizes = capacity ? std::vector<int64_t>{5, 7, 10, 20, 50, 100, 200, 300, 500, 700, 1000, 1500, 2000, 2500, 3000}
                       : std::vector<int64_t>{1000};
  if (c.sigmas.empty())
    c.sigmas = capacity ? std::vector<double>{0.0} : std::vector<double>{0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1, 1.5};
  if (!beta_given) c.params.beta = c.harness == Harness::kUhn ? 1000.0 : 1.0;
  for (const auto n : c.sizes) TORCH_CHECK(n >= 1, "--sizes must be >= 1, got ", n);
  for (const auto s : c.sigmas) TORCH_CHECK(std::isfinite(s) && s >= 0, "--sigmas must be finite and >= 0, got ", s);
  TORCH_CHECK(!c.steps.empty(), "--steps must not be empty");
  for (const auto k : c.steps) TORCH_CHECK(k >= 1, "--steps must be >= 1, got ", k);
  std::sort(c.steps.begin(), c.steps.end());
  c.steps.erase(std::unique(c.steps.begin(), c.steps.end()), c.steps.end());
  if (c.harness == Harness::kUhn) TORCH_CHECK(c.steps == std::vector<int64_t>{1}, "the uhn harness is one shot: --steps 1");
  TORCH_CHECK(std::isfinite(c.params.beta) && c.params.beta > 0, "--beta must be finite and > 0");
  TORCH_CHECK(c.params.alpha > 1, "--alpha must be > 1");
  TORCH_CHECK(c.no_op_threshold >= 0 && c.no_op_threshold <= 1, "--no-op-threshold must be in [0, 1]");
  TORCH_CHECK(c.order == "file" || c.order == "shuffled", "--order must be file or shuffled, got '", c.order, "'");
  TORCH_CHECK(!c.seeds.empty() && !c.models.empty(), "--seeds and --models must not be empty");
  for (const auto& m : c.models) parse_separation(m);
  return c;
}

namespace {

// The split's images in [0, 1] (N x C x H x W), with every requested size checked against it.
at::Tensor load_checked(const MemoryExperimentConfig& c) {
  TORCH_CHECK(c.split == "train" || c.split == "test", "--split must be train or test, got '", c.split, "'");
  const auto all = data::load_images(c.dataset, c.split == "train" ? data::Split::kTrain : data::Split::kTest,
                                     c.data_dir);
  for (const auto n : c.sizes)
    TORCH_CHECK(n <= all.images.size(0), "--sizes: ", n, " memories asked, but ", c.dataset, " (", c.split, ") has ",
                all.images.size(0), " images");
  return to_unit_range(all.images);
}

at::Tensor memory_order(const MemoryExperimentConfig& c, int64_t seed, int64_t available) {
  at::manual_seed(seed);
  return c.order == "file" ? at::arange(available) : at::randperm(available);
}

}  // namespace

std::vector<MemoryExperimentRow> run_krotov_experiment(const MemoryExperimentConfig& c, int64_t power,
                                                       int64_t max_sweeps,
                                                       const std::function<void(const std::string&)>& progress) {
  const auto images = load_checked(c);
  const std::string model = "krotov-n" + std::to_string(power);
  std::vector<MemoryExperimentRow> rows;
  for (const auto seed : c.seeds) {
    const auto order = memory_order(c, seed, images.size(0));
    for (const auto n : c.sizes) {
      const auto chosen = images.index_select(0, order.narrow(0, 0, n));
      const auto patterns = (chosen > 0.5).to(at::kFloat).reshape({n, -1}) * 2 - 1;
      const auto queries = ((corrupt(chosen, Corruption::kBottomHalf, 0.0) > 0.5).to(at::kFloat) * 2 - 1).reshape({n, -1});
      const auto out = krotov_hopfield_retrieve(patterns, queries, power, max_sweeps).state;
      const auto cosine = (out * patterns).sum(1) / patterns.size(1);
      MemoryExperimentRow row{model, n, 0.0, seed, max_sweeps};
      row.success_rate = (cosine >= c.success_cosine).to(at::kDouble).mean().item<double>();
      row.mean_sqdiff = (out - patterns).pow(2).sum(1).mean().item<double>();
      rows.push_back(row);
      if (progress) progress("seed " + std::to_string(seed) + " n=" + std::to_string(n) + ": " + model + " " +
                             std::to_string(row.success_rate));
    }
  }
  return rows;
}

std::vector<MemoryExperimentRow> run_memory_experiment(const MemoryExperimentConfig& c,
                                                       const std::function<void(const std::string&)>& progress) {
  const auto images = load_checked(c);  // N x C x H x W in [0, 1]
  std::vector<MemoryExperimentRow> rows;
  for (const auto seed : c.seeds) {
    const auto order = memory_order(c, seed, images.size(0));
    for (const auto n : c.sizes) {
      const auto chosen = images.index_select(0, order.narrow(0, 0, n));
      const auto memories = chosen.reshape({n, -1});
      // The retrieval matrix: all memories, or those not flagged as no-op outliers.
      const auto flags = c.no_op_threshold > 0 ? flag_dissimilar(memories, c.no_op_threshold)
                                               : at::zeros({n}, at::kBool);
      const int64_t flagged = flags.sum().item<int64_t>();
      TORCH_CHECK(flagged < n, "--no-op-threshold ", c.no_op_threshold, " flags every one of the ", n, " memories");
      const auto retrieval = flagged > 0 ? memories.index_select(0, at::nonzero(flags.logical_not()).squeeze(1))
                                         : memories;
      for (const auto sigma : c.sigmas) {
        at::manual_seed(seed * 1000003 + n * 101 + static_cast<int64_t>(std::llround(sigma * 1000)));
        const auto queries = corrupt_queries(chosen, c, sigma).reshape({n, -1});
        std::ostringstream line;
        line << "seed " << seed << " n=" << n << " sigma=" << sigma << ":";
        for (const auto& model : c.models) {
          const auto s = parse_separation(model);
          auto out = queries;
          int64_t done = 0;
          for (const auto steps : c.steps) {  // UHop continues from the previous step count: one curve per model
            out = c.harness == Harness::kUhn ? retrieve_uhn(retrieval, queries, s, c.params)
                                             : retrieve_uhop(retrieval, out, s, c.params, steps - done);
            done = steps;
            const auto cosine = at::cosine_similarity(out, memories, 1, 1e-12);
            MemoryExperimentRow row{model, n, sigma, seed, steps};
            row.flagged = flagged;
            row.success_rate = (cosine >= c.success_cosine).to(at::kDouble).mean().item<double>();
            row.mean_sqdiff = (at::clamp(out, 0.0, 1.0) - memories).pow(2).sum(1).mean().item<double>();
            const bool dense = s == Separation::kSoftmax || s == Separation::kSoftmax1;
            row.mean_energy = c.harness == Harness::kUhop && dense
                                  ? hopfield_energy(out, retrieval, c.params.beta, s == Separation::kSoftmax1 ? 1.0 : 0.0)
                                        .mean()
                                        .item<double>()
                                  : NAN;
            rows.push_back(row);
          }
          line << " " << model << " " << std::fixed << std::setprecision(3) << rows.back().success_rate;
        }
        if (progress) progress(line.str());
      }
    }
  }
  return rows;
}

}  // namespace outeffhop::memory
