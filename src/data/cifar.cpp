// CIFAR-10 binary batch reader.
#include <ATen/ATen.h>

#include <fstream>
#include <stdexcept>

#include "outeffhop/data.h"

namespace outeffhop::data {

LabeledImages read_cifar10_binary(const std::string& path) {
  constexpr int64_t kPixels = 3 * 32 * 32, kRecord = 1 + kPixels, kClasses = 10;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("CIFAR-10 file '" + path + "': cannot open");
  const int64_t bytes = in.tellg();
  if (bytes <= 0 || bytes % kRecord != 0) {
    throw std::runtime_error("CIFAR-10 file '" + path + "': size " + std::to_string(bytes) +
                             " is not a positive multiple of the 3073-byte record (truncated or not CIFAR-10)");
  }
  const int64_t n = bytes / kRecord;
  auto raw = at::empty({n, kRecord}, at::TensorOptions().dtype(at::kByte));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(raw.mutable_data_ptr<uint8_t>()), bytes)) {
    throw std::runtime_error("CIFAR-10 file '" + path + "': read failed");
  }
  LabeledImages out;
  out.labels = raw.select(1, 0).to(at::kLong);
  const int64_t max_label = out.labels.max().item<int64_t>();
  if (max_label >= kClasses) {
    throw std::runtime_error("CIFAR-10 file '" + path + "': label " + std::to_string(max_label) + " is not in 0..9");
  }
  out.images = raw.narrow(1, 1, kPixels).reshape({n, 3, 32, 32}).contiguous();
  return out;
}

}  // namespace outeffhop::data
