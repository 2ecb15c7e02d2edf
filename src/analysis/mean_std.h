// Mean and population standard deviation of a few values (over seeds or folds), for summary tables.
#pragma once
#include <cmath>
#include <vector>

namespace outeffhop::analysis {

struct Stat {
  double mean = 0, std = 0;
};
inline Stat mean_std(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / static_cast<double>(v.size()));
  return s;
}

}  // namespace outeffhop::analysis
