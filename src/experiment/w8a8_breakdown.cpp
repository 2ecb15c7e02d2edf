#include "outeffhop/experiment/w8a8_breakdown.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace outeffhop::experiment {

std::string point_kind(const std::string& point) {
  std::string kind, part;
  std::istringstream parts(point);
  while (std::getline(parts, part, '.')) {
    const bool number = !part.empty() && std::all_of(part.begin(), part.end(), [](unsigned char c) {
      return std::isdigit(c);
    });
    if (!kind.empty()) kind.push_back('.');
    kind.append(number ? "*" : part);
  }
  return kind;
}

const char* w8a8_cost(const Task& task) { return task.regression() ? "output_change" : "kl"; }

nlohmann::json w8a8_breakdown(const Task& task, TaskModel& model, EvaluateOptions options) {
  options.precisions = {"w8a8"};
  options.time_int8 = false;
  options.keep_float = nullptr;
  EvaluationCache cache;  // the full evaluation's FP32 outputs and W8A8 ranges, reused by every row
  options.cache = &cache;
  nlohmann::json result;
  result["full"] = evaluate_model(task, model, options);
  // The kinds in forward order, each with its points' names; a point W8A8 leaves alone has no range.
  std::vector<std::string> kinds;
  std::map<std::string, std::set<std::string>> points;
  for (const auto& e : result["full"]["w8a8_point_errors"]) {
    if (!e.contains("range")) continue;
    const auto name = e["point"].get<std::string>(), kind = point_kind(name);
    auto& names = points[kind];
    if (names.empty()) kinds.push_back(kind);
    names.insert(name);
  }
  const std::string cost = w8a8_cost(task);
  std::vector<nlohmann::json> rows;
  for (size_t i = 0; i < kinds.size(); ++i) {
    std::fprintf(stderr, "[w8a8 breakdown] %zu/%zu: %s in float\n", i + 1, kinds.size(), kinds[i].c_str());
    // A set lookup: the rule runs at every point of every forward pass.
    options.keep_float = [&names = points[kinds[i]]](const std::string& name) { return names.count(name) > 0; };
    const auto r = evaluate_model(task, model, options);
    nlohmann::json row = {{"kind", kinds[i]}, {"points", points[kinds[i]].size()}, {"w8a8", r["w8a8"]}};
    if (r.contains("extra"))
      for (const auto& [name, precisions] : r["extra"].items()) row["extra"][name] = precisions["w8a8"];
    rows.push_back(std::move(row));
  }
  std::stable_sort(rows.begin(), rows.end(), [&cost](const auto& a, const auto& b) {
    return a["w8a8"][cost].template get<double>() < b["w8a8"][cost].template get<double>();
  });
  result["kinds"] = rows;
  return result;
}

}  // namespace outeffhop::experiment
