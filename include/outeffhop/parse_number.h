// Text read as a number only when all of it is one: std::stoll/stod accept "12x" as 12 and throw messages ("stoll")
// that name neither the text nor where it came from, so callers check the optional and word their own error.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace outeffhop {

template <typename Number, typename Parse>
std::optional<Number> parse_whole(const std::string& text, Parse parse) {
  try {
    size_t used = 0;
    const Number value = parse(text, &used);
    if (used > 0 && used == text.size()) return value;
  } catch (const std::exception&) {  // not a number, or out of range
  }
  return std::nullopt;
}

inline std::optional<int64_t> parse_int(const std::string& text) {
  return parse_whole<int64_t>(text, [](const std::string& s, size_t* used) { return std::stoll(s, used); });
}

inline std::optional<double> parse_double(const std::string& text) {
  return parse_whole<double>(text, [](const std::string& s, size_t* used) { return std::stod(s, used); });
}

}  // namespace outeffhop
