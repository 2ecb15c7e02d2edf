// Checkpoints in the safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header mapping
// each tensor name to {dtype, shape, data_offsets} (plus optional "__metadata__" strings), then the raw little-endian
// data. Files are written atomically (a temporary file renamed into place); reading validates everything and names
// what is wrong.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace outeffhop {

struct SafetensorsFile {
  std::vector<std::pair<std::string, at::Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;
};

// dtypes: float64/32/16, bfloat16, int64/32/16, int8, uint8, bool. Tensors are written contiguous, on CPU.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
SafetensorsFile load_safetensors(const std::string& path);
// The "__metadata__" strings alone: reads the header, not the tensors (e.g. a training state's step and config).
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);
// A metadata string read as a number; a missing key or text that is not wholly a number is an error naming the file
// and the key (std::stoll's own message names neither).
int64_t metadata_int(const std::map<std::string, std::string>& metadata, const std::string& key,
                     const std::string& path);
double metadata_double(const std::map<std::string, std::string>& metadata, const std::string& key,
                       const std::string& path);

// A module's parameters and buffers by their names.
void save_module(const std::string& path, const torch::nn::Module& module,
                 const std::map<std::string, std::string>& metadata = {});
// Copies every tensor of the file into the module's parameter or buffer of the same name; throws when a name is
// missing on either side or a shape or dtype differs. Returns the file's metadata.
std::map<std::string, std::string> load_module(const std::string& path, torch::nn::Module& module);

}  // namespace outeffhop
