// The "marker-copy" task (synthetic): next-token prediction on sequences BOS, x_1, ..., x_T of random tokens where,
// at random places, a marker token M is followed by a copy of x_1. Only the token after a marker is predictable (it
// needs one head to look back at position 1); everywhere else the best a head can do is nothing. This is the
// situation in which, by Bondarenko et al.'s account, softmax heads learn to park their attention on a no-op token
// and grow activation outliers, while softmax_1 heads can abstain. Evaluation scores the positions after markers
// (top-1 % of the copy); the loss trains on every position, as language modelling does.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "opt_task.h"

namespace outeffhop::experiment {
namespace {

class MarkerCopyTask : public OptTask {
 public:
  MarkerCopyTask(ConfigReader& config) {
    auto data = config.child("data");
    tokens_ = data.get<int64_t>("tokens", 64);
    seq_ = data.get<int64_t>("seq", 64);
    marker_rate_ = data.get("marker_rate", 0.1);
    data.finish();
    if (tokens_ < 2 || seq_ < 4 || marker_rate_ <= 0 || marker_rate_ >= 0.5)
      data.fail("", "needs tokens >= 2, seq >= 4 and marker_rate in (0, 0.5)");
    const auto model = read_model_options(config.child("model"), transformer_model_defaults(64, 256));
    nlohmann::json train_json, eval_json;
    read_train_options(config.child("train"), train_, batch_, train_json);
    read_evaluation_options(config.child("eval"), evaluation_, eval_json);
    if (evaluation_.batches == EvaluationOptions::all)  // the samples are drawn, not read: there is no "all"
      config.child("eval").fail("batches", "must be a number for marker-copy, whose evaluation samples are drawn");
    // Token ids: 0..tokens-1 content, tokens = the marker, tokens + 1 = BOS.
    resolved_ = {{"task", "marker-copy"}, {"data", {{"tokens", tokens_}, {"seq", seq_}, {"marker_rate", marker_rate_}}},
                 {"model", model},        {"train", train_json},
                 {"eval", eval_json},     {"derived", {{"vocab_size", tokens_ + 2}, {"max_positions", seq_}}}};
    auto gen = at::make_generator<at::CPUGeneratorImpl>(123456789);  // the same evaluation set for every run
    for (int64_t b = 0; b < evaluation_.batches; ++b) eval_.push_back(sample(gen));
  }

  std::string label() const override { return "marker-copy"; }
  std::string description() const override {
    const auto& m = resolved_["model"];
    return "synthetic marker-copy, OPT " + m["layers"].dump() + " layers, d = " + m["d_model"].dump() + ", seq " +
           std::to_string(seq_) + ", " + std::to_string(train_.steps) + " steps";
  }
  std::string metric_name() const override { return "copy top-1 %"; }
  double metric(double, double accuracy) const override { return 100 * accuracy; }
  bool lower_is_better() const override { return false; }

  TaskModel build(const std::string& variant) const override { return build_model(resolved_, variant); }
  Batch train_batch(at::Generator& gen) const override { return sample(gen); }  // training ignores `scored`
  const std::vector<Batch>& eval_batches() const override { return eval_; }

 private:
  // batch x (seq + 1) tokens: BOS, then random content with markers (never at positions 1 or the last), each
  // followed by a copy of position 1. Input = all but the last, target = all but the first; scored = the rows whose
  // target is a copy.
  Batch sample(at::Generator& gen) const {
    const int64_t marker = tokens_, bos = tokens_ + 1, T = seq_ + 1;
    auto rows = at::randint(tokens_, {batch_, T}, gen);
    rows.select(1, 0).fill_(bos);
    const auto is_marker = at::rand({batch_, T}, gen).lt(marker_rate_);
    is_marker.slice(1, 0, 2).fill_(false), is_marker.select(1, T - 1).fill_(false);
    // A marker right after a marker would hide the first one's copy: keep only markers not preceded by one.
    const auto keep = is_marker.slice(1, 1).logical_and(is_marker.slice(1, 0, T - 1).logical_not());
    const auto markers = at::cat({is_marker.slice(1, 0, 1), keep}, 1);
    const auto copies = at::cat({at::zeros({batch_, 1}, markers.options()), markers.slice(1, 0, T - 1)}, 1);
    rows.masked_fill_(markers, marker);
    rows = at::where(copies, rows.select(1, 1).unsqueeze(1).expand({batch_, T}), rows);
    const auto target_copies = copies.slice(1, 1).reshape({-1});
    return {rows.slice(1, 0, T - 1), rows.slice(1, 1).reshape({-1}), target_copies.nonzero().view({-1})};
  }

  int64_t tokens_ = 64, seq_ = 64, batch_ = 32;
  double marker_rate_ = 0.1;
  std::vector<Batch> eval_;
};

}  // namespace

std::unique_ptr<Task> make_marker_copy_task(ConfigReader& config) { return std::make_unique<MarkerCopyTask>(config); }

}  // namespace outeffhop::experiment
