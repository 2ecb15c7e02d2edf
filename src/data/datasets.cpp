// Dataset registry: where each named image dataset lives and how to load a split of it.
#include <ATen/ATen.h>

#include <filesystem>
#include <stdexcept>

#include "outeffhop/data.h"

namespace outeffhop::data {
namespace {

namespace fs = std::filesystem;
const char* kDebianFashionMnist = "/usr/share/datasets/fashion-mnist";

struct IdxPair {
  std::string images, labels;
};

IdxPair idx_files(const std::string& dir, Split split) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  return {dir + "/" + prefix + "-images-idx3-ubyte.gz", dir + "/" + prefix + "-labels-idx1-ubyte.gz"};
}

std::string fashion_mnist_dir(const std::string& data_dir) {
  if (!data_dir.empty() && fs::exists(data_dir + "/fashion-mnist")) return data_dir + "/fashion-mnist";
  return kDebianFashionMnist;
}

std::string cifar_file(const std::string& data_dir, Split split) {
  return data_dir + "/cifar10/" + (split == Split::kTrain ? "train_subset_10k.bin" : "test_batch.bin");
}

LabeledImages load_idx_pair(const IdxPair& files, const std::string& name) {
  for (const auto& f : {files.images, files.labels}) {
    if (!fs::exists(f)) {
      throw std::runtime_error("dataset '" + name + "': file '" + f + "' not found" +
                               (name == "fashion-mnist" ? " (install Debian's dataset-fashion-mnist)"
                                                        : " (pass --data-dir pointing at ../shared/data)"));
    }
  }
  LabeledImages out;
  out.images = read_idx(files.images);
  out.labels = read_idx(files.labels).to(at::kLong);
  if (out.images.dim() != 3 || out.labels.dim() != 1 || out.images.size(0) != out.labels.size(0)) {
    throw std::runtime_error("dataset '" + name + "': images " + files.images + " and labels " + files.labels +
                             " do not match (expected N x H x W images and N labels)");
  }
  out.images = out.images.unsqueeze(1);  // N x 1 x H x W
  return out;
}

}  // namespace

LabeledImages load_images(const std::string& name, Split split, const std::string& data_dir) {
  if (name == "fashion-mnist") return load_idx_pair(idx_files(fashion_mnist_dir(data_dir), split), name);
  if (name == "mnist" || name == "cifar10") {
    if (data_dir.empty()) throw std::runtime_error("dataset '" + name + "' needs --data-dir (e.g. ../shared/data)");
    if (name == "mnist") return load_idx_pair(idx_files(data_dir + "/mnist", split), name);
    const auto file = cifar_file(data_dir, split);
    if (!fs::exists(file)) throw std::runtime_error("dataset 'cifar10': file '" + file + "' not found");
    return read_cifar10_binary(file);
  }
  throw std::runtime_error("unknown dataset '" + name + "' (expected fashion-mnist, mnist or cifar10)");
}

std::vector<DatasetLocation> locate_datasets(const std::string& data_dir) {
  std::vector<DatasetLocation> out;
  auto add = [&](std::string name, std::vector<std::string> files) {
    bool found = !files.empty();
    for (const auto& f : files) found = found && fs::exists(f);
    out.push_back({std::move(name), std::move(files), found});
  };
  const auto fm = idx_files(fashion_mnist_dir(data_dir), Split::kTrain);
  add("fashion-mnist", {fm.images, fm.labels});
  if (!data_dir.empty()) {
    const auto mn = idx_files(data_dir + "/mnist", Split::kTest);
    add("mnist (test)", {mn.images, mn.labels});
    add("cifar10 (test)", {cifar_file(data_dir, Split::kTest)});
    add("cifar10 (train subset)", {cifar_file(data_dir, Split::kTrain)});
  }
  return out;
}

}  // namespace outeffhop::data
