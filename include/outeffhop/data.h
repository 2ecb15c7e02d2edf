// Image datasets from disk: IDX (MNIST, Fashion-MNIST; gzip or raw) and CIFAR-10 binary batches, plus the
// dataset registry that finds them (Fashion-MNIST from Debian by default, the rest under --data-dir).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace outeffhop::data {

// An IDX file: magic 0x00 0x00 <type> <rank>, then rank big-endian uint32 sizes, then the values.
// Only unsigned-byte data (type 0x08, what MNIST-style files hold) is accepted. Reads gzip or raw files.
// Throws std::runtime_error naming the file and what was wrong (bad magic, sizes, truncation, trailing bytes).
at::Tensor read_idx(const std::string& path);  // uint8 tensor of the file's shape

// CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32 x 32).
struct LabeledImages {
  at::Tensor images;  // N x C x H x W, uint8
  at::Tensor labels;  // N, int64
};
LabeledImages read_cifar10_binary(const std::string& path);

enum class Split { kTrain, kTest };

// A named image dataset: "fashion-mnist" (default: Debian's dataset-fashion-mnist, or data_dir/fashion-mnist),
// "mnist" (data_dir/mnist; only the test split ships in ../shared/data) or "cifar10" (data_dir/cifar10: test_batch.bin,
// and train_subset_10k.bin for the train split).
LabeledImages load_images(const std::string& name, Split split, const std::string& data_dir = "");

// Where the files of `name` would be read from, and whether they are there (for `outeffhop info`).
struct DatasetLocation {
  std::string name;
  std::vector<std::string> files;
  bool found = false;
};
std::vector<DatasetLocation> locate_datasets(const std::string& data_dir);

}  // namespace outeffhop::data
