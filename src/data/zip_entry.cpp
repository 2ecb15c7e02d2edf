// One entry of a zip archive, by name (local file headers; stored or deflate): enough for the datasets shipped as zips.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "outeffhop/data.h"

namespace outeffhop::data {
namespace {

uint32_t u32(const std::vector<uint8_t>& b, size_t at) {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (static_cast<uint32_t>(b[at + 3]) << 24);
}
uint16_t u16(const std::vector<uint8_t>& b, size_t at) { return static_cast<uint16_t>(b[at] | (b[at + 1] << 8)); }

std::vector<uint8_t> inflate_raw(const uint8_t* data, size_t size, size_t expected, const std::string& what) {
  std::vector<uint8_t> out(expected);
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw std::runtime_error(what + ": zlib init failed");
  z.next_in = const_cast<uint8_t*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  inflateEnd(&z);
  if (rc != Z_STREAM_END || z.total_out != expected) throw std::runtime_error(what + ": corrupt deflate data");
  return out;
}

}  // namespace

std::vector<uint8_t> read_zip_entry(const std::string& zip_path, const std::string& entry) {
  std::ifstream in(zip_path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + zip_path);
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  while (pos + 30 <= b.size() && u32(b, pos) == 0x04034b50) {  // local file header
    const uint16_t flags = u16(b, pos + 6), method = u16(b, pos + 8);
    const uint32_t packed = u32(b, pos + 18), size = u32(b, pos + 22);
    const uint16_t name_len = u16(b, pos + 26), extra_len = u16(b, pos + 28);
    if (flags & 0x8) throw std::runtime_error(zip_path + ": entries with data descriptors are not supported");
    const size_t data_at = pos + 30 + name_len + extra_len;
    if (data_at + packed > b.size()) throw std::runtime_error(zip_path + ": truncated entry");
    const std::string name(reinterpret_cast<const char*>(&b[pos + 30]), name_len);
    if (name == entry) {
      const std::string what = zip_path + ":" + entry;
      if (method == 0) return {b.begin() + data_at, b.begin() + data_at + size};
      if (method == 8) return inflate_raw(&b[data_at], packed, size, what);
      throw std::runtime_error(what + ": unsupported compression method " + std::to_string(method));
    }
    pos = data_at + packed;
  }
  throw std::runtime_error(zip_path + ": no entry named '" + entry + "'");
}

}  // namespace outeffhop::data
