// Multivariate time series for forecasting (the STanHop-Net experiment): CSV tables whose first column is a date,
// the Crossformer/Informer train/validation/test splits, z-scores fitted on the training rows, and windows of
// in_len input steps followed by out_len target steps.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace outeffhop::data {

// A CSV table: a header line, then rows of a date (kept as text, unparsed) and numbers. Throws naming the file and line
// on a row with the wrong number of fields, an empty or non-numeric field, or a table without rows.
struct TimeSeriesTable {
  std::vector<std::string> columns;  // the header after the date column
  std::vector<std::string> dates;
  at::Tensor values;  // float64, rows x columns
};
TimeSeriesTable read_time_series_csv(const std::string& path);

// A forecasting dataset by name: "etth1", "ettm1" (data_dir/ett/ETTh1.csv, ETTm1.csv) or "wth"
// (data_dir/weather/WTH.csv).
std::string time_series_path(const std::string& data_dir, const std::string& name);

// Rows per split in the published protocol: ETTh1 12/4/4 months of hours (8640/2880/2880), ETTm1 the same in
// quarter-hours (34560/11520/11520), WTH 28/10/10 months of hours (20160/7200/7200).
struct SplitRows {
  int64_t train = 0, val = 0, test = 0;
};
SplitRows published_split(const std::string& name);

enum class SeriesSplit { kTrain, kVal, kTest };

// Windows over one split of a z-scored table. The validation and test splits start in_len rows before their first
// target row (as Informer's borders do), so every row of the split is predicted by some window.
class ForecastWindows {
 public:
  // Every column z-scored with the mean and population std of the training rows (a constant column keeps std 1).
  ForecastWindows(const TimeSeriesTable& table, SplitRows rows, SeriesSplit split, int64_t in_len, int64_t out_len);

  int64_t size() const { return count_; }  // number of windows
  // Windows by index (int64 B): input B x in_len x D, target B x out_len x D (float32).
  std::pair<at::Tensor, at::Tensor> batch(const at::Tensor& indices) const;
  std::pair<at::Tensor, at::Tensor> random_batch(int64_t size, at::Generator& gen) const;

  const at::Tensor& mean() const { return mean_; }  // D, of the training rows (float64)
  const at::Tensor& std() const { return std_; }
  const at::Tensor& rows() const { return rows_; }  // the split's rows, z-scored (float32)

 private:
  at::Tensor rows_, mean_, std_;
  int64_t in_len_ = 0, out_len_ = 0, count_ = 0;
};

}  // namespace outeffhop::data
