// The "stanhop" task: STanHop-Net forecasting a multivariate series (ETTh1 by default, ETTm1 or WTH) in the
// Crossformer/Informer protocol: published split sizes, z-scores fitted on the training rows, in_len steps in, out_len
// out, MSE and MAE on the normalised scale over every test window. Training follows the paper's recipe (Adam, no
// weight decay, gradient clip 5, lr halved every two epochs at most five times, early stopping on the validation MSE).
#include <ATen/ATen.h>

#include <cstdio>

#include "outeffhop/experiment/task.h"
#include "outeffhop/models/stanhop.h"
#include "outeffhop/time_series.h"

namespace outeffhop::experiment {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Consecutive windows of a split in batches of `batch` (the last may be smaller), at most `limit` batches.
std::vector<Batch> window_batches(const data::ForecastWindows& windows, int64_t batch, int64_t limit) {
  std::vector<Batch> out;
  for (int64_t start = 0; start < windows.size() && static_cast<int64_t>(out.size()) < limit; start += batch) {
    const auto [x, y] = windows.batch(at::arange(start, std::min(start + batch, windows.size()), at::kLong));
    out.push_back({x, y});
  }
  return out;
}

class StanhopTask : public Task {
 public:
  StanhopTask(ConfigReader& config, const std::string& data_dir) {
    auto data = config.child("data");
    dataset_ = data.get<std::string>("dataset", kDefaultSeriesDataset);
    const auto in_len = data.get<int64_t>("in_len", 168), out_len = data.get<int64_t>("out_len", kDefaultHorizon);
    data.finish();
    if (in_len < 1 || out_len < 1) data.fail("", "needs in_len and out_len >= 1");
    const auto split = data::published_split(dataset_);
    const auto table = data::read_time_series_csv(data::time_series_path(data_dir, dataset_));
    train_windows_ = std::make_unique<data::ForecastWindows>(table, split, data::SeriesSplit::kTrain, in_len, out_len);
    const data::ForecastWindows val(table, split, data::SeriesSplit::kVal, in_len, out_len);
    const data::ForecastWindows test(table, split, data::SeriesSplit::kTest, in_len, out_len);

    const nlohmann::json model_defaults = {{"seg_len", 6},   {"win_size", 2}, {"layers", 3}, {"factor", 10},
                                           {"d_model", 256}, {"heads", 4},    {"d_ff", 512}, {"dropout", 0.2}};
    const auto model = read_model_options(config.child("model"), model_defaults);
    // The paper's recipe as defaults: Adam (AdamW without decay), lr 1e-4, clip 5, lr halved every two epochs,
    // validation every epoch, at most 10 epochs.
    auto t = config.child("train");
    const auto batch = t.get<int64_t>("batch", batch_);
    if (batch < 1) t.fail("batch", "must be >= 1");
    const int64_t epoch = ceil_div(train_windows_->size(), batch);
    train_.lr = 1e-4, train_.weight_decay = 0, train_.beta2 = 0.999, train_.clip = 5;
    const auto epochs = t.get<int64_t>("epochs", 10);  // the step budget in epochs, unless steps is given
    if (epochs < 1) t.fail("epochs", "must be >= 1");
    train_.schedule = "halving", train_.halve_every = 2 * epoch, train_.steps = epochs * epoch;
    nlohmann::json train_json = {{"epochs", epochs}}, eval_json;
    read_train_options(t, train_, batch_, train_json);
    auto e = config.child("eval");
    const auto eval_batch = e.get<int64_t>("batch", 256);  // windows per evaluation batch
    if (eval_batch < 1) e.fail("batch", "must be >= 1");
    evaluation_.batches = ceil_div(std::max(test.size(), val.size()), eval_batch);  // every test and validation window
    evaluation_.validate_every = e.get<int64_t>("validate_every", epoch);
    evaluation_.patience = e.get<int64_t>("patience", 3);
    if (evaluation_.validate_every < 0 || evaluation_.patience < 1)
      e.fail("", "needs validate_every >= 0 (0: no early stopping) and patience >= 1");
    read_evaluation_options(e, evaluation_, eval_json);
    eval_json.update(
        {{"batch", eval_batch}, {"validate_every", evaluation_.validate_every}, {"patience", evaluation_.patience}});

    eval_ = window_batches(test, eval_batch, evaluation_.batches);
    validation_ = window_batches(val, eval_batch, evaluation_.batches);
    resolved_ = {{"task", "stanhop"}, {"data", {{"dataset", dataset_}, {"in_len", in_len}, {"out_len", out_len}}},
                 {"model", model},    {"train", train_json},
                 {"eval", eval_json}, {"derived", {{"series", table.values.size(1)}}}};
    std::fprintf(stderr,
                 "[stanhop] %s: %lld series; %lld training, %lld validation, %lld test windows of %lld -> %lld steps\n",
                 dataset_.c_str(), static_cast<long long>(table.values.size(1)),
                 static_cast<long long>(train_windows_->size()), static_cast<long long>(val.size()),
                 static_cast<long long>(test.size()), static_cast<long long>(in_len), static_cast<long long>(out_len));
  }

  std::string label() const override { return "stanhop-" + dataset_ + "-" + resolved_["data"]["out_len"].dump(); }
  std::string description() const override {
    const auto& m = resolved_["model"];
    const auto& d = resolved_["data"];
    return "STanHop-Net, " + m["layers"].dump() + " scale blocks, d = " + m["d_model"].dump() + ", " + dataset_ + " " +
           d["in_len"].dump() + " -> " + d["out_len"].dump() + ", up to " + std::to_string(train_.steps) + " steps";
  }
  std::string metric_name() const override { return "MSE"; }
  double metric(double mean_loss, double) const override { return mean_loss; }
  bool lower_is_better() const override { return true; }
  bool regression() const override { return true; }

  TaskModel build(const std::string& variant) const override { return build_model(resolved_, variant); }
  Batch train_batch(at::Generator& gen) const override {
    auto [x, y] = train_windows_->random_batch(batch_, gen);
    return {x, y};
  }
  const std::vector<Batch>& eval_batches() const override { return eval_; }
  const std::vector<Batch>& validation_batches() const override { return validation_; }

  analysis::OutlierRows outlier_rows(const std::string& point) const override {
    return analysis::stanhop_outlier_rows(point);
  }
  std::map<std::string, at::Tensor> w8a8_lookups(const TaskModel&) const override { return {}; }

 private:
  std::string dataset_;
  int64_t batch_ = 32;
  std::unique_ptr<data::ForecastWindows> train_windows_;
  std::vector<Batch> eval_, validation_;
};

}  // namespace

TaskModel build_stanhop_model(const nlohmann::json& task, const std::string& variant) {
  models::StanhopConfig c;
  const auto &m = task.at("model"), &d = task.at("data");
  c.series = task.at("derived").at("series"), c.in_len = d.at("in_len"), c.out_len = d.at("out_len");
  c.seg_len = m.at("seg_len"), c.win_size = m.at("win_size"), c.layers = m.at("layers"), c.factor = m.at("factor");
  c.d_model = m.at("d_model"), c.num_heads = m.at("heads"), c.d_ff = m.at("d_ff"), c.dropout = m.at("dropout");
  c.variant = nn::parse_attention_variant(variant);
  models::StanhopNet model(c);
  return {model.ptr(), [model](const at::Tensor& x) mutable { return model->forward(x); },
          [model](nn::ActivationPointsPtr p) mutable { model->set_activation_points(std::move(p)); }};
}

std::unique_ptr<Task> make_stanhop_task(ConfigReader& config, const std::string& data_dir) {
  return std::make_unique<StanhopTask>(config, data_dir);
}

}  // namespace outeffhop::experiment
