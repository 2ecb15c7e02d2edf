// IDX and CIFAR-10 readers: round trips through files written here, corrupted copies, and the real datasets.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "outeffhop/data.h"
#include "test_util.h"

namespace outeffhop {
namespace {

namespace fs = std::filesystem;
using namespace outeffhop::testing;

class DataFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("outeffhop_data_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // An IDX file of uint8 values 0, 1, 2, ... with the given dims.
  static std::string idx_bytes(const std::vector<uint32_t>& dims) {
    std::string b = {0, 0, 0x08, static_cast<char>(dims.size())};
    size_t count = 1;
    for (uint32_t d : dims) {
      for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((d >> s) & 0xff));
      count *= d;
    }
    for (size_t i = 0; i < count; ++i) b.push_back(static_cast<char>(i % 251));
    return b;
  }
  void write_raw(const std::string& p, const std::string& bytes) const {
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  void write_gz(const std::string& p, const std::string& bytes) const {
    gzFile f = gzopen(p.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  }
  static std::string read_all(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  static void expect_error(const std::string& p, const std::string& fragment) {
    try {
      data::read_idx(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "message should name the file";
    }
  }
  fs::path dir_;
};

TEST_F(DataFiles, IdxRoundTripGzipAndRaw) {
  const auto bytes = idx_bytes({3, 4, 5});
  write_gz(path("a.gz"), bytes);
  write_raw(path("a.idx"), bytes);
  for (const auto& p : {path("a.gz"), path("a.idx")}) {
    const auto t = data::read_idx(p);
    EXPECT_EQ(t.sizes(), at::IntArrayRef({3, 4, 5}));
    EXPECT_EQ(t.scalar_type(), at::kByte);
    EXPECT_TRUE(at::equal(t.flatten().to(at::kLong), at::arange(60, at::kLong) % 251));
  }
}

TEST_F(DataFiles, IdxCorruptedCopiesFailClearly) {
  const auto bytes = idx_bytes({10, 7});
  write_raw(path("trunc.idx"), bytes.substr(0, bytes.size() - 5));
  expect_error(path("trunc.idx"), "truncated");
  write_gz(path("trunc.gz"), bytes.substr(0, 6));
  expect_error(path("trunc.gz"), "truncated");
  auto bad_magic = bytes;
  bad_magic[0] = 1;
  write_raw(path("magic.idx"), bad_magic);
  expect_error(path("magic.idx"), "bad magic");
  auto bad_type = bytes;
  bad_type[2] = 0x0D;  // float data
  write_raw(path("type.idx"), bad_type);
  expect_error(path("type.idx"), "not supported");
  write_raw(path("extra.idx"), bytes + "xyz");
  expect_error(path("extra.idx"), "trailing bytes");
  auto zero_dim = idx_bytes({10, 7});
  zero_dim[7] = 0;  // first dimension 10 -> 0
  write_raw(path("zero.idx"), zero_dim);
  expect_error(path("zero.idx"), "size 0");
  // Flip bytes inside the deflate stream of a valid gzip file: zlib reports a data or CRC error.
  write_gz(path("good.gz"), idx_bytes({50, 50}));
  auto gz = read_all(path("good.gz"));
  for (size_t i = gz.size() / 2; i < gz.size() / 2 + 8; ++i) gz[i] = static_cast<char>(~gz[i]);
  write_raw(path("flipped.gz"), gz);
  EXPECT_THROW(data::read_idx(path("flipped.gz")), std::runtime_error);
  // A gzip file cut in the middle.
  write_raw(path("cut.gz"), read_all(path("good.gz")).substr(0, 40));
  EXPECT_THROW(data::read_idx(path("cut.gz")), std::runtime_error);
  expect_error(path("missing.gz"), "cannot open");
}

TEST_F(DataFiles, CifarBinaryRoundTripAndTruncation) {
  std::string bytes;
  for (int r = 0; r < 3; ++r) {
    bytes.push_back(static_cast<char>(r * 4));
    for (int i = 0; i < 3072; ++i) bytes.push_back(static_cast<char>((i + r) % 256));
  }
  write_raw(path("c.bin"), bytes);
  const auto c = data::read_cifar10_binary(path("c.bin"));
  EXPECT_EQ(c.images.sizes(), at::IntArrayRef({3, 3, 32, 32}));
  EXPECT_TRUE(at::equal(c.labels, at::tensor({0, 4, 8}, at::kLong)));
  EXPECT_EQ(c.images[1][2][31][31].item<int64_t>(), (3071 + 1) % 256);  // last byte of record 1 is B(31,31)
  write_raw(path("t.bin"), bytes.substr(0, 3073 * 2 + 100));
  EXPECT_THROW(data::read_cifar10_binary(path("t.bin")), std::runtime_error);
  bytes[3073] = 10;  // label out of range
  write_raw(path("l.bin"), bytes);
  EXPECT_THROW(data::read_cifar10_binary(path("l.bin")), std::runtime_error);
}

TEST(RealData, FashionMnistFromDebian) {
  if (!fs::exists(kFashionMnistTrain)) GTEST_SKIP() << "Fashion-MNIST (Debian dataset-fashion-mnist) not installed";
  const auto d = data::load_images("fashion-mnist", data::Split::kTest);
  EXPECT_EQ(d.images.sizes(), at::IntArrayRef({10000, 1, 28, 28}));
  EXPECT_EQ(d.labels.max().item<int64_t>(), 9);
  EXPECT_EQ(d.labels.bincount().min().item<int64_t>(), 1000);  // balanced test set
}

TEST(RealData, MnistAndCifarFromSharedData) {
  const auto dir = shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "../shared/data is absent: MNIST and CIFAR-10 checks skipped";
  const auto mnist = data::load_images("mnist", data::Split::kTest, dir);
  EXPECT_EQ(mnist.images.sizes(), at::IntArrayRef({10000, 1, 28, 28}));
  EXPECT_EQ(mnist.labels.bincount().size(0), 10);
  const auto cifar = data::load_images("cifar10", data::Split::kTest, dir);
  EXPECT_EQ(cifar.images.sizes(), at::IntArrayRef({10000, 3, 32, 32}));
  EXPECT_EQ(cifar.labels.bincount().min().item<int64_t>(), 1000);
  EXPECT_THROW(data::load_images("mnist", data::Split::kTest, ""), std::runtime_error);
  EXPECT_THROW(data::load_images("imagenet", data::Split::kTest, dir), std::runtime_error);
}

}  // namespace
}  // namespace outeffhop
