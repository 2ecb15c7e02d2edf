// What the tasks that train an OPT (lm, marker-copy) share: the paper's OPT hooks, W8A8 through the embedding lookups,
// and the OPT Linears' input points for real INT8.
#pragma once
#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/experiment/task.h"

namespace outeffhop::experiment {

class OptTask : public Task {
 public:
  analysis::OutlierRows outlier_rows(const std::string& point) const override {
    return analysis::opt_outlier_rows(point);
  }
  std::map<std::string, at::Tensor> w8a8_lookups(const TaskModel& model) const override {
    const auto params = model.module->named_parameters();
    return {{"model.decoder.embed_tokens", params["model.decoder.embed_tokens.weight"]},
            {"model.decoder.embed_positions", params["model.decoder.embed_positions.weight"]}};
  }
  std::function<std::string(const std::string&)> int8_input_point() const override {
    return analysis::opt_linear_input_point;
  }
};

}  // namespace outeffhop::experiment
