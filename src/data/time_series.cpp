// Time-series CSV tables, published splits and forecasting windows (see time_series.h).
#include "outeffhop/time_series.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace outeffhop::data {
namespace {

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  for (std::string f; std::getline(in, f, ',');) fields.push_back(f);
  if (!line.empty() && line.back() == ',') fields.emplace_back();  // a trailing empty field
  return fields;
}

}  // namespace

TimeSeriesTable read_time_series_csv(const std::string& path) {
  std::ifstream in(path);
  TORCH_CHECK(in, "cannot read ", path);
  std::string line;
  TORCH_CHECK(std::getline(in, line), path, ": empty file (expected a header line)");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  auto header = split_fields(line);
  TORCH_CHECK(header.size() >= 2, path, ":1: expected a date column and at least one value column, got '", line, "'");
  TimeSeriesTable table;
  table.columns.assign(header.begin() + 1, header.end());
  const size_t width = table.columns.size();
  std::vector<double> values;
  for (int64_t number = 2; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto fields = split_fields(line);
    TORCH_CHECK(fields.size() == width + 1, path, ":", number, ": expected ", width + 1, " fields, got ",
                fields.size());
    table.dates.push_back(fields[0]);
    for (size_t i = 1; i < fields.size(); ++i) {
      const auto& f = fields[i];
      char* end = nullptr;
      errno = 0;
      const double v = f.empty() ? NAN : std::strtod(f.c_str(), &end);
      TORCH_CHECK(!f.empty() && end == f.c_str() + f.size() && errno == 0 && std::isfinite(v), path, ":", number,
                  ": column '", table.columns[i - 1], "' holds '", f, "', not a finite number");
      values.push_back(v);
    }
  }
  const auto rows = static_cast<int64_t>(table.dates.size());
  TORCH_CHECK(rows > 0, path, ": no data rows");
  table.values = at::tensor(values, at::kDouble).view({rows, static_cast<int64_t>(width)});
  return table;
}

std::string time_series_path(const std::string& data_dir, const std::string& name) {
  const std::string dir = data_dir.empty() ? "." : data_dir;
  if (name == "etth1") return dir + "/ett/ETTh1.csv";
  if (name == "ettm1") return dir + "/ett/ETTm1.csv";
  if (name == "wth") return dir + "/weather/WTH.csv";
  TORCH_CHECK(false, "unknown time-series dataset '", name, "'; known: etth1, ettm1, wth");
}

SplitRows published_split(const std::string& name) {
  constexpr int64_t kMonth = 30 * 24;  // hours
  if (name == "etth1") return {12 * kMonth, 4 * kMonth, 4 * kMonth};
  if (name == "ettm1") return {4 * 12 * kMonth, 4 * 4 * kMonth, 4 * 4 * kMonth};
  if (name == "wth") return {28 * kMonth, 10 * kMonth, 10 * kMonth};
  TORCH_CHECK(false, "unknown time-series dataset '", name, "'; known: etth1, ettm1, wth");
}

ForecastWindows::ForecastWindows(const TimeSeriesTable& table, SplitRows rows, SeriesSplit split, int64_t in_len,
                                 int64_t out_len)
    : in_len_(in_len), out_len_(out_len) {
  TORCH_CHECK(in_len >= 1 && out_len >= 1, "forecast windows: need in_len, out_len >= 1, got ", in_len, ", ", out_len);
  TORCH_CHECK(rows.train > 0 && rows.val > 0 && rows.test > 0, "forecast windows: every split needs rows");
  const int64_t total = rows.train + rows.val + rows.test;
  TORCH_CHECK(total <= table.values.size(0), "forecast windows: the splits need ", total, " rows, the table has ",
              table.values.size(0));
  const auto train = table.values.slice(0, 0, rows.train);
  mean_ = train.mean(0);
  std_ = train.std(0, /*unbiased=*/false);
  std_ = at::where(std_ > 0, std_, at::ones_like(std_));
  // Informer's borders: validation and test windows begin in_len rows before their split.
  int64_t begin = 0, end = rows.train;
  if (split == SeriesSplit::kVal) begin = rows.train - in_len, end = rows.train + rows.val;
  if (split == SeriesSplit::kTest) begin = rows.train + rows.val - in_len, end = total;
  TORCH_CHECK(begin >= 0, "forecast windows: in_len ", in_len, " is longer than the training split");
  rows_ = ((table.values.slice(0, begin, end) - mean_) / std_).to(at::kFloat).contiguous();
  count_ = rows_.size(0) - in_len - out_len + 1;
  TORCH_CHECK(count_ >= 1, "forecast windows: a split of ", rows_.size(0), " rows holds no window of ", in_len, " + ",
              out_len, " steps");
}

std::pair<at::Tensor, at::Tensor> ForecastWindows::batch(const at::Tensor& indices) const {
  TORCH_CHECK(indices.dim() == 1 && indices.scalar_type() == at::kLong, "forecast windows: indices must be int64 B");
  TORCH_CHECK(indices.numel() == 0 || (indices.min().item<int64_t>() >= 0 && indices.max().item<int64_t>() < count_),
              "forecast windows: an index is outside [0, ", count_, ")");
  const auto steps = at::arange(in_len_ + out_len_, indices.options());
  const auto windows = rows_.index_select(0, (indices.unsqueeze(1) + steps).reshape(-1))
                           .view({indices.size(0), in_len_ + out_len_, rows_.size(1)});
  return {windows.narrow(1, 0, in_len_), windows.narrow(1, in_len_, out_len_)};
}

std::pair<at::Tensor, at::Tensor> ForecastWindows::random_batch(int64_t size, at::Generator& gen) const {
  return batch(at::randint(count_, {size}, gen, at::TensorOptions().dtype(at::kLong)));
}

}  // namespace outeffhop::data
