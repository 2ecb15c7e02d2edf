// safetensors reading and writing (see safetensors.h).
#include "outeffhop/safetensors.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "outeffhop/parse_number.h"

namespace outeffhop {
namespace {

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_names() {
  static const std::vector<std::pair<std::string, at::ScalarType>> names = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},   {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},    {"U8", at::kByte},       {"BOOL", at::kBool}};
  return names;
}

std::string dtype_name(at::ScalarType t) {
  for (const auto& [name, type] : dtype_names())
    if (type == t) return name;
  TORCH_CHECK(false, "safetensors: unsupported dtype ", t);
}

at::ScalarType dtype_of(const std::string& name, const std::string& path) {
  for (const auto& [n, type] : dtype_names())
    if (n == name) return type;
  TORCH_CHECK(false, path, ": unknown safetensors dtype '", name, "'");
}

std::vector<std::pair<std::string, at::Tensor>> module_tensors(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& p : module.named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers()) tensors.emplace_back(b.key(), b.value());
  return tensors;
}

// An open file with its validated JSON header; the tensors' data start at data_start.
struct OpenFile {
  std::ifstream in;
  int64_t size = 0, data_start = 0;
  nlohmann::json header;
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
};

OpenFile open_file(const std::string& path) {
  OpenFile f;
  f.in.open(path, std::ios::binary | std::ios::ate);
  TORCH_CHECK(f.in, "cannot read ", path);
  f.size = f.in.tellg();
  TORCH_CHECK(f.size >= 8, path, ": truncated (", f.size, " bytes; a safetensors file starts with an 8-byte length)");
  f.in.seekg(0);
  unsigned char len_bytes[8];
  f.in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  TORCH_CHECK(header_len <= static_cast<uint64_t>(f.size - 8), path, ": header length ", header_len,
              " exceeds the file (", f.size, " bytes): truncated or not a safetensors file");
  std::string text(header_len, '\0');
  f.in.read(text.data(), static_cast<std::streamsize>(header_len));
  try {
    f.header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, path, ": the header is not valid JSON (", e.what(), ")");
  }
  TORCH_CHECK(f.header.is_object(), path, ": the header is not a JSON object");
  f.data_start = 8 + static_cast<int64_t>(header_len);
  if (f.header.contains("__metadata__"))
    for (const auto& [k, v] : f.header["__metadata__"].items()) {
      TORCH_CHECK(v.is_string(), path, ": metadata '", k, "' is not a string");
      f.metadata[k] = v.get<std::string>();
    }
  return f;
}

}  // namespace

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    TORCH_CHECK(!header.contains(name), "safetensors: tensor name '", name, "' appears twice");
    const auto c = t.detach().to(at::kCPU).contiguous();
    const int64_t bytes = c.numel() * static_cast<int64_t>(c.element_size());
    header[name] = {{"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    TORCH_CHECK(out, "cannot write ", tmp);
    const uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));  // little-endian
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& c : data)
      out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
    TORCH_CHECK(out.good(), "writing ", tmp, " failed");
  }
  std::filesystem::rename(tmp, path);  // atomic on one filesystem: a reader never sees half a checkpoint
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  return open_file(path).metadata;
}

namespace {
template <typename Parse>
auto metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key,
                     const std::string& path, const char* kind, Parse parse) {
  const auto it = metadata.find(key);
  TORCH_CHECK(it != metadata.end(), path, ": no '", key, "' in the metadata");
  const auto value = parse(it->second);
  TORCH_CHECK(value, path, ": metadata '", key, "' is '", it->second, "', not ", kind);
  return *value;
}
}  // namespace

int64_t metadata_int(const std::map<std::string, std::string>& metadata, const std::string& key,
                     const std::string& path) {
  return metadata_number(metadata, key, path, "an integer", parse_int);
}

double metadata_double(const std::map<std::string, std::string>& metadata, const std::string& key,
                       const std::string& path) {
  return metadata_number(metadata, key, path, "a number", parse_double);
}

SafetensorsFile load_safetensors(const std::string& path) {
  auto f = open_file(path);
  const int64_t data_size = f.size - f.data_start;
  SafetensorsFile file;
  file.metadata = f.metadata;
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [name, entry] : f.header.items()) {
    if (name == "__metadata__") continue;
    TORCH_CHECK(entry.contains("dtype") && entry.contains("shape") && entry.contains("data_offsets"), path,
                ": tensor '", name, "' lacks dtype, shape or data_offsets");
    const auto type = dtype_of(entry["dtype"].get<std::string>(), path);
    const auto shape = entry["shape"].get<std::vector<int64_t>>();
    const auto offsets = entry["data_offsets"].get<std::vector<int64_t>>();
    TORCH_CHECK(offsets.size() == 2 && 0 <= offsets[0] && offsets[0] <= offsets[1] && offsets[1] <= data_size, path,
                ": tensor '", name, "' has data offsets outside the file's ", data_size, " data bytes (truncated?)");
    int64_t numel = 1;
    for (const auto d : shape) {
      TORCH_CHECK(d >= 0, path, ": tensor '", name, "' has a negative dimension");
      numel *= d;
    }
    const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(type));
    TORCH_CHECK(offsets[1] - offsets[0] == bytes, path, ": tensor '", name, "' spans ", offsets[1] - offsets[0],
                " bytes but its dtype and shape need ", bytes);
    auto t = at::empty(shape, at::TensorOptions().dtype(type));
    f.in.seekg(f.data_start + offsets[0]);
    f.in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(bytes));
    TORCH_CHECK(f.in.good(), path, ": reading tensor '", name, "' failed");
    order.emplace_back(offsets[0], name);
    file.tensors.emplace_back(name, t);
  }
  // File order (JSON objects are unordered).
  std::vector<std::pair<std::string, at::Tensor>> sorted;
  std::sort(order.begin(), order.end());
  for (const auto& [offset, name] : order)
    for (const auto& item : file.tensors)
      if (item.first == name) sorted.push_back(item);
  file.tensors = std::move(sorted);
  return file;
}

void save_module(const std::string& path, const torch::nn::Module& module,
                 const std::map<std::string, std::string>& metadata) {
  save_safetensors(path, module_tensors(module), metadata);
}

std::map<std::string, std::string> load_module(const std::string& path, torch::nn::Module& module) {
  auto file = load_safetensors(path);
  std::map<std::string, at::Tensor> targets;
  for (const auto& [name, t] : module_tensors(module)) targets[name] = t;
  std::map<std::string, at::Tensor> loaded(file.tensors.begin(), file.tensors.end());
  for (const auto& [name, t] : targets)
    TORCH_CHECK(loaded.count(name), path, ": the checkpoint has no tensor '", name, "' that the model needs");
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : loaded) {
    const auto target = targets.find(name);
    TORCH_CHECK(target != targets.end(), path, ": tensor '", name, "' is not in the model");
    TORCH_CHECK(target->second.sizes() == t.sizes() && target->second.scalar_type() == t.scalar_type(), path,
                ": tensor '", name, "' is ", t.scalar_type(), " ", t.sizes(), ", the model's is ",
                target->second.scalar_type(), " ", target->second.sizes());
    target->second.copy_(t);
  }
  return file.metadata;
}

}  // namespace outeffhop
