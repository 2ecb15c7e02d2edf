// Timing helper shared by the benchmark harnesses.
#pragma once
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace outeffhop::bench {

// Median seconds per call over at least 3 calls and min_seconds, after one warm-up call.
inline double median_seconds(const std::function<void()>& call, double min_seconds) {
  call();
  std::vector<double> times;
  double total = 0;
  while (times.size() < 3 || total < min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    total += times.back();
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

}  // namespace outeffhop::bench
