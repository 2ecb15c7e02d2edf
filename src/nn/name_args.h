// Parsing of "name" / "name(arg,arg)" specifications (attention variants, Hopfield associations).
#pragma once
#include <c10/util/Exception.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "outeffhop/parse_number.h"

namespace outeffhop::nn::detail {

struct NameArgs {
  std::string name;
  std::vector<std::string> args;
};

// what: the kind of thing named, for error messages ("attention variant").
inline NameArgs split_name_args(const std::string& spec, const char* what) {
  const auto open = spec.find('(');
  if (open == std::string::npos) return {spec, {}};
  // The usual cause: an unquoted "clipped(-0.025,1)" in a YAML flow list, split at its comma.
  TORCH_CHECK(spec.back() == ')', what, " '", spec, "': missing ')' (in a YAML list, quote a name with a comma: ",
              "[\"clipped(-0.025,1)\"])");
  NameArgs out{spec.substr(0, open), {}};
  std::stringstream in(spec.substr(open + 1, spec.size() - open - 2));
  for (std::string a; std::getline(in, a, ',');) out.args.push_back(a);
  return out;
}

inline double parse_number(const std::string& spec, const std::string& text, const char* what) {
  const auto v = parse_double(text);
  TORCH_CHECK(v && std::isfinite(*v), what, " '", spec, "': '", text, "' is not a finite number");
  return *v;
}

inline void expect_arg_count(const std::string& spec, const std::vector<std::string>& args, size_t min, size_t max,
                             const char* what) {
  TORCH_CHECK(args.size() >= min && args.size() <= max, what, " '", spec, "' takes ", min,
              min == max ? "" : " to " + std::to_string(max), " argument(s), got ", args.size());
}

}  // namespace outeffhop::nn::detail
