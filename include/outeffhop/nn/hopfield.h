// Hopfield layers with the surface of ml-jku's hopfield-layers (Ramsauer et al. 2021): Hopfield, HopfieldPooling and
// HopfieldLayer, with the association chosen by name (softmax, softmax1 = OutEffHop, softmax_n, sparsemax, entmax15,
// entmax_alpha, poly_n) and the paper's four modes. Argument names and defaults follow hopfield-layers; where its code
// is wrong (REFERENCE.md §8) this one differs: beta per head scales each head's block, the stop rule is on the state
// by default, and every association really changes the computation.
//
// Shapes (batch_first = true; false swaps the first two dims of every input and output):
//   stored pattern      B x S x stored_pattern_size      (the memories / keys)
//   state pattern       B x T x input_size               (the queries)
//   pattern projection  B x S x pattern_projection_size  (the values)
//   output              B x T x output_size (or num_heads * pattern_size with disable_out_projection)
// Masks use hopfield-layers' (and PyTorch's) convention: stored_pattern_padding_mask is bool B x S with true =
// padding (ignored); association_mask is bool with true = not allowed, or additive, broadcastable to B x H x T x S.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

namespace outeffhop::nn {

enum class StopRule {
  kState,        // a query stops updating when ||xi_{t+1} - xi_t||_2 <= update_steps_eps (the paper's fixed point)
  kAssociation,  // ... when max |P_{t+1} - P_t| <= update_steps_eps (hopfield-layers' rule)
};

// Largest number of state updates with update_steps_max = -1 ("until update_steps_eps"): guarantees termination.
constexpr int64_t kMaxUpdateSteps = 1000;

struct HopfieldOptions {
  int64_t input_size = 0;      // depth of the state pattern (required)
  int64_t hidden_size = 0;     // depth of the association space per head; 0 = input_size / num_heads
  int64_t output_size = 0;     // depth of the output projection; 0 = input_size
  int64_t pattern_size = 0;    // per-head depth of projected patterns; 0 = hidden_size
  int64_t num_heads = 1;
  std::vector<double> scaling;  // beta: empty = 1/sqrt(hidden_size) (1 if everything is static); one, or one per head
  int64_t update_steps_max = 0;  // state updates before the output association: 0 = one association; -1 = until eps
  double update_steps_eps = 1e-4;
  StopRule stop_rule = StopRule::kState;

  bool normalize_stored_pattern = true;
  bool normalize_stored_pattern_affine = true;
  double normalize_stored_pattern_eps = 1e-5;
  bool normalize_state_pattern = true;
  bool normalize_state_pattern_affine = true;
  double normalize_state_pattern_eps = 1e-5;
  bool normalize_pattern_projection = true;
  bool normalize_pattern_projection_affine = true;
  double normalize_pattern_projection_eps = 1e-5;
  bool normalize_hopfield_space = false;  // LayerNorm of each head's projected state and stored patterns
  bool normalize_hopfield_space_affine = false;
  double normalize_hopfield_space_eps = 1e-5;

  bool stored_pattern_as_static = false;         // use stored patterns as they are (no W_K)
  bool state_pattern_as_static = false;          // no W_Q
  bool pattern_projection_as_static = false;     // no W_V
  bool pattern_projection_as_connected = false;  // W_V acts on the projected stored patterns (values from keys)
  int64_t stored_pattern_size = 0;               // 0 = input_size
  int64_t pattern_projection_size = 0;           // 0 = input_size

  bool batch_first = true;
  // softmax | softmax1 | softmax_n(N) | sparsemax | entmax15 | entmax_alpha (alpha = 1 + sigmoid(a_h), learned per
  // head, a_h = 0 at start) | poly_n(N) (relu(z)^N normalised).
  std::string association = "softmax";
  std::string association_activation;  // applied to the output: "", relu, tanh, sigmoid, gelu
  double dropout = 0.0;                // on the association matrix, in training
  bool input_bias = true;
  bool add_zero_association = false;   // append a zero stored pattern and projection after projecting (= softmax_1)
  bool disable_out_projection = false;
};

// The paper's modes (§2.4). MemoryRetrieval: no learning, W = I (all static, no normalisation, no output
// projection), beta given, softmax_1; it equals hopfield_retrieve with max_steps = update_steps_max + 1. OutEffHop,
// OutEffHopPooling, OutEffHopLayer: Hopfield, HopfieldPooling, HopfieldLayer with the softmax_1 association.
enum class HopfieldMode { kMemoryRetrieval, kOutEffHop, kOutEffHopPooling, kOutEffHopLayer };
HopfieldMode parse_hopfield_mode(const std::string& name);
HopfieldOptions memory_retrieval_options(int64_t dim, double beta, int64_t update_steps_max = 0,
                                         double update_steps_eps = 0.0);
HopfieldOptions options_for_mode(HopfieldMode mode, HopfieldOptions base);

class HopfieldImpl : public torch::nn::Module {
 public:
  explicit HopfieldImpl(HopfieldOptions options);

  // input = (stored, state, projection); see the shapes above.
  at::Tensor forward(const at::Tensor& stored, const at::Tensor& state, const at::Tensor& projection,
                     const at::Tensor& stored_pattern_padding_mask = {}, const at::Tensor& association_mask = {});
  // Self-association: one tensor is stored pattern, state pattern and pattern projection.
  at::Tensor forward(const at::Tensor& input) { return forward(input, input, input); }

  // The association matrix B x H x T x S (S + 1 with add_zero_association) of the output association.
  at::Tensor association_matrix(const at::Tensor& stored, const at::Tensor& state, const at::Tensor& projection,
                                const at::Tensor& stored_pattern_padding_mask = {},
                                const at::Tensor& association_mask = {});
  // The projected patterns B x H x S x pattern_size (S + 1 with add_zero_association) the association mixes.
  at::Tensor projected_pattern_matrix(const at::Tensor& stored, const at::Tensor& state, const at::Tensor& projection,
                                      const at::Tensor& stored_pattern_padding_mask = {},
                                      const at::Tensor& association_mask = {});

  const HopfieldOptions& options() const { return options_; }
  int64_t hidden_size() const { return hidden_; }
  int64_t pattern_size() const { return pattern_; }
  int64_t stored_pattern_dim() const;
  int64_t pattern_projection_dim() const;
  at::Tensor scaling() const { return beta_; }  // H
  // Number of state updates each query made in the last forward (B x H x T), for analysis.
  at::Tensor last_update_steps() const { return last_steps_; }

 private:
  struct Association {
    at::Tensor k, v, xi;          // B x H x S x hd, B x H x S x pd, B x H x T x hd (state after the updates)
    std::optional<at::Tensor> mask;  // bool (true = keep) or additive, broadcastable to B x H x T x S
  };
  Association prepare(const at::Tensor& stored, const at::Tensor& state, const at::Tensor& projection,
                      const at::Tensor& padding_mask, const at::Tensor& association_mask);
  at::Tensor probabilities(const at::Tensor& xi, const Association& a);  // B x H x T x S
  void update_state(Association& a);
  at::Tensor finish(const at::Tensor& heads_out, int64_t B, int64_t T);  // merge heads, project, activate

  HopfieldOptions options_;
  int64_t hidden_ = 0, pattern_ = 0;
  at::Tensor beta_;         // H (a buffer)
  at::Tensor alpha_logit_;  // H, entmax_alpha only
  double n_ = 0;            // softmax family
  int kind_ = 0;            // which association (see hopfield.cpp)
  double poly_order_ = 0;
  torch::nn::Linear state_projection_{nullptr}, stored_projection_{nullptr}, pattern_projection_{nullptr},
      out_projection_{nullptr};
  torch::nn::LayerNorm norm_stored_pattern_{nullptr}, norm_state_pattern_{nullptr}, norm_pattern_projection_{nullptr},
      norm_hopfield_space_{nullptr};
  at::Tensor last_steps_;
};
TORCH_MODULE(Hopfield);

// A learned static query (pooling_weights, quantity x input_size, N(0, 0.02)) retrieves from the input:
// input B x S x d (stored pattern and projection) -> B x (quantity * output_size).
class HopfieldPoolingImpl : public torch::nn::Module {
 public:
  explicit HopfieldPoolingImpl(HopfieldOptions options, int64_t quantity = 1, bool trainable = true);
  at::Tensor forward(const at::Tensor& input, const at::Tensor& stored_pattern_padding_mask = {},
                     const at::Tensor& association_mask = {});
  at::Tensor forward(const at::Tensor& stored, const at::Tensor& projection,
                     const at::Tensor& stored_pattern_padding_mask, const at::Tensor& association_mask);
  at::Tensor association_matrix(const at::Tensor& input, const at::Tensor& stored_pattern_padding_mask = {});
  Hopfield hopfield{nullptr};
  at::Tensor pooling_weights;  // 1 x quantity x input_size (batch_first)

 private:
  at::Tensor expanded_state(int64_t batch) const;
};
TORCH_MODULE(HopfieldPooling);

// Learned stored patterns (lookup_weights, quantity x stored size, N(0, 0.02)) and optionally separate learned
// projections (target_weights); the input is the state pattern: B x T x input_size -> B x T x output_size.
class HopfieldLayerImpl : public torch::nn::Module {
 public:
  explicit HopfieldLayerImpl(HopfieldOptions options, int64_t quantity = 1, bool lookup_weights_as_separated = false,
                             bool lookup_targets_as_trainable = true, bool trainable = true);
  at::Tensor forward(const at::Tensor& input, const at::Tensor& stored_pattern_padding_mask = {},
                     const at::Tensor& association_mask = {});
  at::Tensor association_matrix(const at::Tensor& input);
  Hopfield hopfield{nullptr};
  at::Tensor lookup_weights, target_weights;  // 1 x quantity x size; target_weights undefined unless separated

 private:
  std::pair<at::Tensor, at::Tensor> stored_and_projection(int64_t batch) const;
};
TORCH_MODULE(HopfieldLayer);

}  // namespace outeffhop::nn
