// The associative-memory experiments of the paper's Figures 5-6 (REFERENCE.md §7): capacity (half-masked queries,
// growing numbers of memories) and noise robustness (Gaussian noise, 1000 memories), under the two public harnesses,
// seeded, with every query of a point retrieved in batched matrix products.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

namespace outeffhop::memory {

enum class Harness {
  // UHN (SparseModernHopfield): s = X z; s = s / sum s; p = sep(s); p = p / sum p; out = X^T p. One shot.
  kUhn,
  // UHop: x <- X^T act(beta X x) for `steps` steps, no renormalisation.
  kUhop,
};
Harness parse_harness(const std::string& name);  // "uhn" | "uhop"

enum class Separation { kSoftmax, kSoftmax1, kSparsemax, kSparsemaxBeta, kEntmax15, kEntmaxAlpha, kPoly10 };
// softmax | softmax1 | sparsemax | sparsemax-beta | entmax15 | entmax-alpha | poly10
Separation parse_separation(const std::string& name);
std::string separation_name(Separation s);

struct SeparationParams {
  double beta = 1000.0;  // UHN: the scale inside softmax(beta s), sparsemax(beta s), ...; UHop: logits beta X x
  double alpha = 1.3;    // entmax-alpha's fixed alpha (no learning here)
};

// The separation function on scores (B x M) along the last dim: softmax(beta s), softmax_1(beta s), sparsemax(s),
// sparsemax(beta s), entmax15(beta s), entmax_bisect(beta s, alpha), relu(beta s)^10 normalised.
at::Tensor separate(Separation s, const at::Tensor& scores, const SeparationParams& params);

// memories: M x d, queries: B x d (pixels in [0, 1]) -> B x d retrieved patterns.
at::Tensor retrieve_uhn(const at::Tensor& memories, const at::Tensor& queries, Separation s,
                        const SeparationParams& params);
at::Tensor retrieve_uhop(const at::Tensor& memories, const at::Tensor& queries, Separation s,
                         const SeparationParams& params, int64_t steps);

struct MemoryExperimentConfig {
  std::string experiment = "capacity";  // capacity | noise
  Harness harness = Harness::kUhn;
  std::string dataset = "fashion-mnist";
  std::string split = "test";
  std::string data_dir;
  std::vector<std::string> models = {"softmax", "softmax1", "sparsemax", "sparsemax-beta",
                                     "entmax15", "entmax-alpha", "poly10"};
  std::vector<int64_t> sizes;   // memories; default: the published capacity sizes, or {1000} for noise
  std::vector<double> sigmas;   // noise std; default: the published sigmas, or {0} for capacity
  std::vector<int64_t> steps = {1};  // UHop update steps; several give retrieval curves (success vs steps)
  SeparationParams params;      // beta default depends on the harness (see memory_experiment_defaults)
  std::string order = "shuffled";  // file: the first N images in file order; shuffled: a permutation fixed by seed
  std::vector<int64_t> seeds = {1, 2, 3};
  double success_cosine = 0.8;
  // No-op classification (paper §2.2, App. B.1): when > 0, memories whose cosine similarity to every other memory
  // stays below this threshold are flagged as no-op outliers and leave the retrieval matrix (for softmax_1 they join
  // the shared class vector, whose +1 is already softmax_1's). Their queries still count.
  double no_op_threshold = 0.0;
};

// Fills the published defaults for whatever the config leaves empty (sizes, sigmas) and checks every option.
MemoryExperimentConfig with_defaults(MemoryExperimentConfig config, bool beta_given);

struct MemoryExperimentRow {
  std::string model;
  int64_t n = 0;
  double sigma = 0;
  int64_t seed = 0;
  int64_t steps = 0;
  double success_rate = 0;  // fraction of queries with cosine(output, original) >= success_cosine
  double mean_sqdiff = 0;   // mean over queries of sum over pixels (clamp(out) - original)^2
  // UHop with softmax / softmax1 only (NaN otherwise): mean Hopfield energy H(x) = -lse_n(beta, X x) + |x|^2 / 2 of
  // the outputs, whose update x <- X^T softmax_n(beta X x) never raises it (Lemma 2.1): an energy trace over steps.
  double mean_energy = 0;
  int64_t flagged = 0;  // memories flagged as no-op outliers (no_op_threshold > 0)
};

// Runs the sweep; progress(line) is called once per (seed, size, sigma) point.
std::vector<MemoryExperimentRow> run_memory_experiment(const MemoryExperimentConfig& config,
                                                       const std::function<void(const std::string&)>& progress = {});

// Capacity of the binary Krotov-Hopfield memory (krotov_hopfield.h) on binarised images (pixel > 0.5 -> +1, else
// -1): queries have their bottom half set to -1, success is cosine >= success_cosine to the stored pattern, mean_sqdiff
// is 4 x the Hamming distance. Uses config.dataset, split, data_dir, sizes, order, seeds; model = "krotov-n<power>".
std::vector<MemoryExperimentRow> run_krotov_experiment(const MemoryExperimentConfig& config, int64_t power,
                                                       int64_t max_sweeps,
                                                       const std::function<void(const std::string&)>& progress = {});

}  // namespace outeffhop::memory
