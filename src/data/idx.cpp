// IDX reader (gzip through zlib, which also reads uncompressed files) with strict validation.
#include <ATen/ATen.h>
#include <zlib.h>

#include <memory>
#include <stdexcept>

#include "outeffhop/data.h"

namespace outeffhop::data {
namespace {

constexpr int kMaxRank = 4;
constexpr uint8_t kUnsignedByte = 0x08;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("IDX file '" + path + "': " + what);
}

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};

// Reads exactly `size` bytes; fails on a short read (truncated file) or a gzip stream error (corruption).
void read_exact(gzFile f, const std::string& path, void* dst, size_t size, const char* what) {
  auto* out = static_cast<unsigned char*>(dst);
  size_t done = 0;
  while (done < size) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size - done, 1u << 30));
    const int got = gzread(f, out + done, chunk);
    if (got < 0) {
      int err = 0;
      fail(path, std::string("corrupt data while reading the ") + what + " (" + gzerror(f, &err) + ")");
    }
    if (got == 0) {
      fail(path, std::string("truncated: the ") + what + " needs " + std::to_string(size) + " bytes, found " +
                     std::to_string(done));
    }
    done += static_cast<size_t>(got);
  }
}

}  // namespace

at::Tensor read_idx(const std::string& path) {
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) fail(path, "cannot open");
  unsigned char magic[4];
  read_exact(f.get(), path, magic, 4, "header");
  if (magic[0] != 0 || magic[1] != 0) fail(path, "bad magic number (not an IDX file)");
  if (magic[2] != kUnsignedByte) {
    fail(path, "data type 0x" + std::to_string(magic[2]) + " is not supported (only unsigned byte, 0x08)");
  }
  const int rank = magic[3];
  if (rank < 1 || rank > kMaxRank) fail(path, "rank " + std::to_string(rank) + " is outside 1.." + std::to_string(kMaxRank));
  std::vector<int64_t> sizes(rank);
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    unsigned char b[4];
    read_exact(f.get(), path, b, 4, "dimension sizes");
    sizes[i] = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | int64_t{b[3]};
    if (sizes[i] == 0) fail(path, "dimension " + std::to_string(i) + " has size 0");
    count *= sizes[i];
    if (count > (int64_t{1} << 34)) fail(path, "declared size is implausibly large (> 16 GiB)");
  }
  auto t = at::empty(sizes, at::TensorOptions().dtype(at::kByte));
  read_exact(f.get(), path, t.mutable_data_ptr<uint8_t>(), static_cast<size_t>(count), "data");
  unsigned char extra;
  const int more = gzread(f.get(), &extra, 1);
  if (more < 0) {
    int err = 0;
    fail(path, std::string("corrupt data after the payload (") + gzerror(f.get(), &err) + ")");
  }
  if (more > 0) fail(path, "trailing bytes after the " + std::to_string(count) + " declared values");
  return t;
}

}  // namespace outeffhop::data
