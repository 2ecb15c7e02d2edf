// safetensors checkpoints: the bytes follow the format's specification (checked by hand here, not by our reader),
// round trips keep every dtype and shape, damaged files give clear errors, modules save and load exactly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "outeffhop/models/opt.h"
#include "outeffhop/safetensors.h"

namespace outeffhop {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("outeffhop_test_" + name)).string();
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Safetensors, BytesFollowTheSpecification) {
  const auto path = temp_path("spec.safetensors");
  save_safetensors(path, {{"w", at::tensor({1.5f, -2.0f})}}, {{"format", "pt"}});
  const auto bytes = file_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);  // little-endian length
  ASSERT_EQ(bytes.size(), 8 + n + 8);
  EXPECT_EQ((8 + n) % 8, 0u);  // data 8-byte aligned
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["w"]["dtype"], "F32");
  EXPECT_EQ(header["w"]["shape"], nlohmann::json::array({2}));
  EXPECT_EQ(header["w"]["data_offsets"], nlohmann::json::array({0, 8}));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  float values[2];
  std::memcpy(values, bytes.data() + 8 + n, 8);
  EXPECT_EQ(values[0], 1.5f);
  EXPECT_EQ(values[1], -2.0f);
  std::filesystem::remove(path);
}

TEST(Safetensors, RoundTripKeepsDtypesShapesOrderAndMetadata) {
  const auto path = temp_path("round.safetensors");
  at::manual_seed(0);
  const std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"b.f32", at::randn({3, 4})},
      {"a.f64", at::randn({2}, at::kDouble)},
      {"bf16", at::randn({5}).to(at::kBFloat16)},
      {"i64", at::arange(6).view({2, 3})},
      {"bool", at::tensor({1, 0}).to(at::kBool)},
      {"scalar", at::tensor(3.0f).view({})},
      {"empty", at::empty({0, 4})},
      {"strided", at::randn({4, 4}).t()}};
  save_safetensors(path, tensors, {{"step", "12"}});
  const auto file = load_safetensors(path);
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(file.tensors[i].first, tensors[i].first);
    EXPECT_TRUE(at::equal(file.tensors[i].second, tensors[i].second)) << tensors[i].first;
    EXPECT_EQ(file.tensors[i].second.scalar_type(), tensors[i].second.scalar_type());
  }
  EXPECT_EQ(file.metadata.at("step"), "12");
  EXPECT_EQ(read_safetensors_metadata(path), file.metadata);  // the header alone
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove(path);
}

TEST(Safetensors, DamagedFilesGiveClearErrors) {
  const auto path = temp_path("damaged.safetensors");
  save_safetensors(path, {{"w", at::randn({16})}});
  const auto bytes = file_bytes(path);
  auto expect_error = [&](const std::string& content, const std::string& message) {
    std::ofstream(path, std::ios::binary) << content;
    try {
      load_safetensors(path);
      ADD_FAILURE() << "no error for: " << message;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  expect_error(bytes.substr(0, bytes.size() - 4), "outside the file");   // truncated data
  expect_error(bytes.substr(0, 20), "exceeds the file");                 // truncated header
  expect_error(bytes.substr(0, 5), "truncated");                          // not even a length
  auto garbage = bytes;
  garbage[9] = '#';
  expect_error(garbage, "not valid JSON");
  EXPECT_THROW(load_safetensors(temp_path("missing.safetensors")), c10::Error);
  std::filesystem::remove(path);
}

TEST(Safetensors, MetadataNumbersNameTheFileAndKeyWhenBad) {
  const std::map<std::string, std::string> m = {
      {"step", "250"}, {"loss", "1.5e-3"}, {"word", "abc"}, {"tail", "12x"}, {"empty", ""}, {"huge", "1e999999"}};
  EXPECT_EQ(metadata_int(m, "step", "f.safetensors"), 250);
  EXPECT_DOUBLE_EQ(metadata_double(m, "loss", "f.safetensors"), 1.5e-3);
  auto expect_error = [&](auto read, const std::string& key, const std::string& message) {
    try {
      read(m, key, "f.safetensors");
      ADD_FAILURE() << "no error for '" << key << "'";
    } catch (const c10::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("f.safetensors"), std::string::npos) << what;
      EXPECT_NE(what.find(message), std::string::npos) << what;
    }
  };
  expect_error(metadata_int, "word", "'word' is 'abc', not an integer");
  expect_error(metadata_int, "tail", "'tail' is '12x', not an integer");
  expect_error(metadata_int, "loss", "not an integer");
  expect_error(metadata_int, "empty", "not an integer");
  expect_error(metadata_int, "missing", "no 'missing' in the metadata");
  expect_error(metadata_double, "word", "not a number");
  expect_error(metadata_double, "huge", "not a number");  // out of range
}

TEST(Safetensors, ModulesSaveAndLoadExactly) {
  models::OptConfig c;
  c.vocab_size = 20, c.d_model = 8, c.num_layers = 2, c.num_heads = 2, c.d_ff = 16, c.max_positions = 12;
  c.variant = nn::parse_attention_variant("sink");
  at::manual_seed(1);
  models::OptForCausalLM a(c);
  at::manual_seed(2);
  models::OptForCausalLM b(c);
  const auto ids = at::randint(20, {2, 7}, at::kLong);
  EXPECT_FALSE(at::equal(a->forward(ids), b->forward(ids)));
  const auto path = temp_path("opt.safetensors");
  save_module(path, *a, {{"variant", "sink"}});
  EXPECT_EQ(load_module(path, *b).at("variant"), "sink");
  EXPECT_TRUE(at::equal(a->forward(ids), b->forward(ids)));

  c.num_layers = 1;  // the checkpoint has tensors this model lacks
  models::OptForCausalLM smaller(c);
  EXPECT_THROW(load_module(path, *smaller), c10::Error);
  c.num_layers = 2, c.d_ff = 32;  // shapes differ
  models::OptForCausalLM wider(c);
  EXPECT_THROW(load_module(path, *wider), c10::Error);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace outeffhop
