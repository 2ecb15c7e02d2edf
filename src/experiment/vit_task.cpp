// The "vit" task: a ViT classifier on an image dataset (Fashion-MNIST from Debian by default; MNIST or CIFAR-10 from
// the data directory), pixels scaled to [0, 1] and standardised per channel with the training split's mean and std.
// Trained on the train split (random batches), evaluated on the first test images.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>

#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/data.h"
#include "outeffhop/experiment/task.h"
#include "outeffhop/models/vit.h"

namespace outeffhop::experiment {
namespace {

class VitTask : public Task {
 public:
  VitTask(ConfigReader& config, const std::string& data_dir) {
    auto data = config.child("data");
    dataset_ = data.get<std::string>("dataset", kDefaultImageDataset);
    data.finish();
    auto model_defaults = transformer_model_defaults(64, 256);
    model_defaults["patch_size"] = 4;
    const auto model = read_model_options(config.child("model"), model_defaults);
    auto t = config.child("train");
    label_smoothing_ = t.get("label_smoothing", 0.1);  // the paper's ViT setup
    if (label_smoothing_ < 0 || label_smoothing_ >= 1) t.fail("label_smoothing", "must be in [0, 1)");
    nlohmann::json train_json, eval_json;
    read_train_options(t, train_, batch_, train_json);
    read_evaluation_options(config.child("eval"), evaluation_, eval_json);
    train_json["label_smoothing"] = label_smoothing_;

    std::fprintf(stderr, "[vit] loading %s\n", dataset_.c_str());
    auto train = data::load_images(dataset_, data::Split::kTrain, data_dir);
    auto test = data::load_images(dataset_, data::Split::kTest, data_dir);
    TORCH_CHECK(train.images.size(2) == train.images.size(3), "vit: ", dataset_, " images are not square");
    const int64_t channels = train.images.size(1), image_size = train.images.size(2);
    const int64_t num_classes = train.labels.max().item<int64_t>() + 1;
    if (image_size % model["patch_size"].get<int64_t>() != 0)
      config.fail("model.patch_size", "must divide the image size " + std::to_string(image_size));
    const auto pixels = train.images.to(at::kFloat).div_(255);
    mean_ = pixels.mean({0, 2, 3}, /*keepdim=*/true);
    std_ = pixels.std({0, 2, 3}, /*unbiased=*/true, /*keepdim=*/true);
    train_images_ = normalise(train.images), train_labels_ = train.labels;
    const int64_t available = test.images.size(0) / batch_;
    TORCH_CHECK(available >= 1, "vit: the ", dataset_, " test split has fewer than one batch of ", batch_, " images");
    for (int64_t b = 0; b < std::min(evaluation_.batches, available); ++b)
      eval_.push_back({normalise(test.images.slice(0, b * batch_, (b + 1) * batch_)),
                       test.labels.slice(0, b * batch_, (b + 1) * batch_)});
    resolved_ = {{"task", "vit"},
                 {"data", {{"dataset", dataset_}}},
                 {"model", model},
                 {"train", train_json},
                 {"eval", eval_json},
                 {"derived", {{"image_size", image_size}, {"channels", channels}, {"num_classes", num_classes}}}};
    std::fprintf(stderr, "[vit] %s: %lld training images of %lld x %lld x %lld, %zu evaluation batches of %lld\n",
                 dataset_.c_str(), static_cast<long long>(train.images.size(0)), static_cast<long long>(channels),
                 static_cast<long long>(image_size), static_cast<long long>(image_size), eval_.size(),
                 static_cast<long long>(batch_));
  }

  std::string label() const override { return "vit-" + dataset_; }
  std::string description() const override {
    const auto& m = resolved_["model"];
    return "ViT, " + m["layers"].dump() + " layers, d = " + m["d_model"].dump() + ", patch " + m["patch_size"].dump() +
           ", " + std::to_string(train_.steps) + " steps; " + dataset_;
  }
  std::string metric_name() const override { return "top-1 %"; }
  double metric(double, double accuracy) const override { return 100 * accuracy; }
  bool lower_is_better() const override { return false; }

  TaskModel build(const std::string& variant) const override { return build_model(resolved_, variant); }

  Batch train_batch(at::Generator& gen) const override {
    const auto index = at::randint(train_images_.size(0), {batch_}, gen);
    return {train_images_.index_select(0, index), train_labels_.index_select(0, index)};
  }
  const std::vector<Batch>& eval_batches() const override { return eval_; }
  double label_smoothing() const override { return label_smoothing_; }

  analysis::OutlierRows outlier_rows(const std::string& point) const override {
    return analysis::vit_outlier_rows(point);
  }
  std::map<std::string, at::Tensor> w8a8_lookups(const TaskModel&) const override { return {}; }
  std::function<std::string(const std::string&)> int8_input_point() const override {
    return analysis::vit_linear_input_point;
  }

 private:
  at::Tensor normalise(const at::Tensor& images) const { return (images.to(at::kFloat).div(255) - mean_) / std_; }

  std::string dataset_;
  int64_t batch_ = 64;
  double label_smoothing_ = 0.1;
  at::Tensor mean_, std_, train_images_, train_labels_;  // mean_, std_: 1 x C x 1 x 1
  std::vector<Batch> eval_;
};

}  // namespace

TaskModel build_vit_model(const nlohmann::json& task, const std::string& variant) {
  models::VitConfig c;
  const auto &m = task.at("model"), &d = task.at("derived");
  c.patch_size = m.at("patch_size"), c.d_model = m.at("d_model"), c.num_layers = m.at("layers");
  c.num_heads = m.at("heads"), c.d_ff = m.at("d_ff"), c.dropout = m.at("dropout");
  c.attention_dropout = m.at("attention_dropout"), c.init_std = m.at("init_std");
  c.image_size = d.at("image_size"), c.channels = d.at("channels"), c.num_classes = d.at("num_classes");
  c.variant = nn::parse_attention_variant(variant);
  models::VitForImageClassification model(c);
  return {model.ptr(), [model](const at::Tensor& images) mutable { return model->forward(images); },
          [model](nn::ActivationPointsPtr p) mutable { model->set_activation_points(std::move(p)); }};
}

std::unique_ptr<Task> make_vit_task(ConfigReader& config, const std::string& data_dir) {
  return std::make_unique<VitTask>(config, data_dir);
}

}  // namespace outeffhop::experiment
