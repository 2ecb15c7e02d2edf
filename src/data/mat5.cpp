// A reader for MATLAB v5 MAT files (compressed or not): numeric arrays, char, cell, struct and (old-style) objects,
// as a tree of MatValue. Enough for the multiple-instance benchmarks (PRTools dataset objects); no sparse data.
#include <zlib.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "outeffhop/data.h"

namespace outeffhop::data {
namespace {

enum : uint32_t { kInt8 = 1, kUInt8, kInt16, kUInt16, kInt32, kUInt32, kSingle, kDouble = 9, kInt64 = 12, kUInt64,
                  kMatrix = 14, kCompressed, kUtf8, kUtf16 };
enum : uint8_t { kCell = 1, kStruct, kObject, kChar, kSparse };

struct Element {
  uint32_t type = 0;
  const uint8_t* data = nullptr;
  size_t size = 0;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, std::string what) : p_(data), end_(data + size), what_(std::move(what)) {}
  bool done() const { return p_ >= end_; }
  Element next() {
    need(8);
    uint32_t type, size;
    std::memcpy(&type, p_, 4);
    std::memcpy(&size, p_ + 4, 4);
    if (type >> 16) {  // small data element: 2-byte size, 2-byte type, 4 bytes of data
      Element e{type & 0xffff, p_ + 4, type >> 16};
      p_ += 8;
      return e;
    }
    need(8 + size);
    Element e{type, p_ + 8, size};
    p_ += 8 + ((size + 7) / 8) * 8;
    if (p_ > end_) p_ = end_;  // the last element of a file may omit its padding
    return e;
  }

 private:
  void need(size_t n) const {
    if (static_cast<size_t>(end_ - p_) < n) throw std::runtime_error(what_ + ": truncated MAT element");
  }
  const uint8_t* p_;
  const uint8_t* end_;
  std::string what_;
};

template <typename T>
void append_as_double(const Element& e, std::vector<double>& out) {
  for (size_t i = 0; i + sizeof(T) <= e.size; i += sizeof(T)) {
    T v;
    std::memcpy(&v, e.data + i, sizeof(T));
    out.push_back(static_cast<double>(v));
  }
}

std::vector<double> numbers(const Element& e, const std::string& what) {
  std::vector<double> out;
  switch (e.type) {
    case kInt8: append_as_double<int8_t>(e, out); break;
    case kUInt8: case kUtf8: append_as_double<uint8_t>(e, out); break;
    case kInt16: append_as_double<int16_t>(e, out); break;
    case kUInt16: case kUtf16: append_as_double<uint16_t>(e, out); break;
    case kInt32: append_as_double<int32_t>(e, out); break;
    case kUInt32: append_as_double<uint32_t>(e, out); break;
    case kSingle: append_as_double<float>(e, out); break;
    case kDouble: append_as_double<double>(e, out); break;
    case kInt64: append_as_double<int64_t>(e, out); break;
    case kUInt64: append_as_double<uint64_t>(e, out); break;
    default: throw std::runtime_error(what + ": unsupported numeric element type " + std::to_string(e.type));
  }
  return out;
}

MatValue parse_matrix(const Element& m, const std::string& what) {
  MatValue v;
  if (m.size == 0) return v;  // an empty array
  Reader r(m.data, m.size, what);
  const auto flags = r.next();
  v.mat_class = flags.data[0];
  for (double d : numbers(r.next(), what)) v.dims.push_back(static_cast<int64_t>(d));
  const auto name = r.next();
  v.name.assign(reinterpret_cast<const char*>(name.data), name.size);
  int64_t count = 1;
  for (auto d : v.dims) count *= d;
  if (v.mat_class == kStruct || v.mat_class == kObject) {
    if (v.mat_class == kObject) {
      const auto cls = r.next();
      v.class_name.assign(reinterpret_cast<const char*>(cls.data), cls.size);
    }
    const auto field_len = static_cast<size_t>(numbers(r.next(), what).at(0));
    const auto names = r.next();
    std::vector<std::string> fields;
    for (size_t i = 0; field_len > 0 && i + field_len <= names.size; i += field_len)
      fields.emplace_back(reinterpret_cast<const char*>(names.data + i), strnlen(reinterpret_cast<const char*>(names.data + i), field_len));
    for (int64_t e = 0; e < count; ++e)
      for (const auto& f : fields) v.fields[f].push_back(parse_matrix(r.next(), what + "." + f));
  } else if (v.mat_class == kCell) {
    for (int64_t e = 0; e < count; ++e) v.cells.push_back(parse_matrix(r.next(), what));
  } else if (v.mat_class == kChar) {
    const auto codes = numbers(r.next(), what);
    for (double c : codes) v.text.push_back(static_cast<char>(c));  // the benchmarks' labels are ASCII
  } else if (v.mat_class == kSparse) {
    throw std::runtime_error(what + ": sparse arrays are not supported");
  } else if (!r.done()) {
    v.numbers = numbers(r.next(), what);  // real part (an imaginary part, if any, is ignored)
  }
  return v;
}

}  // namespace

const MatValue& MatValue::field(const std::string& name) const {
  const auto it = fields.find(name);
  if (it == fields.end() || it->second.empty()) throw std::runtime_error("MAT value has no field '" + name + "'");
  return it->second.front();
}

std::vector<MatValue> read_mat5(const std::vector<uint8_t>& bytes, const std::string& what) {
  if (bytes.size() < 128 || std::memcmp(bytes.data(), "MATLAB 5.0 MAT-file", 19) != 0)
    throw std::runtime_error(what + ": not a MATLAB 5.0 MAT-file");
  if (bytes[126] != 'I' || bytes[127] != 'M') throw std::runtime_error(what + ": only little-endian MAT files");
  std::vector<MatValue> out;
  Reader r(bytes.data() + 128, bytes.size() - 128, what);
  while (!r.done()) {
    const auto e = r.next();
    if (e.type == kMatrix) {
      out.push_back(parse_matrix(e, what));
    } else if (e.type == kCompressed) {
      uLongf size = 0;
      std::vector<uint8_t> inflated(e.size * 4 + 1024);
      int rc;
      while ((rc = uncompress(inflated.data(), &(size = inflated.size()), e.data, e.size)) == Z_BUF_ERROR)
        inflated.resize(inflated.size() * 2);
      if (rc != Z_OK) throw std::runtime_error(what + ": corrupt compressed element");
      Reader inner(inflated.data(), size, what);
      const auto m = inner.next();
      if (m.type != kMatrix) throw std::runtime_error(what + ": compressed element is not a matrix");
      out.push_back(parse_matrix(m, what));
    }
  }
  return out;
}

}  // namespace outeffhop::data
