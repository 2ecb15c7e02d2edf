// Time-series tables and forecasting windows: the published ETTh1/ETTm1/WTH split sizes, train-only z-scores, window
// contents, and clear errors on malformed CSV rows.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "outeffhop/time_series.h"
#include "test_util.h"

namespace outeffhop::data {
namespace {

namespace fs = std::filesystem;
using namespace outeffhop::testing;

class TimeSeriesFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("outeffhop_series_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) const {
    const auto p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  void expect_error(const std::string& text, const std::string& fragment) const {
    const auto p = write("bad.csv", text);
    try {
      read_time_series_csv(p);
      FAIL() << "no error for: " << text;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  }
  fs::path dir_;
};

TEST_F(TimeSeriesFiles, ReadsATableWithCrlfAndRejectsMalformedRows) {
  const auto t = read_time_series_csv(write("ok.csv", "date,a,b\r\n2020-01-01,1.5,-2\r\n2020-01-02,3,4e1\r\n"));
  EXPECT_EQ(t.columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.dates, (std::vector<std::string>{"2020-01-01", "2020-01-02"}));
  EXPECT_LE(max_abs_diff(t.values, at::tensor({1.5, -2.0, 3.0, 40.0}, at::kDouble).view({2, 2})), 0.0);
  expect_error("date,a,b\nx,1\n", "bad.csv:2: expected 3 fields, got 2");
  expect_error("date,a,b\nx,1,2\ny,1,2,3\n", "bad.csv:3: expected 3 fields");
  expect_error("date,a,b\nx,1,oops\n", "column 'b' holds 'oops'");
  expect_error("date,a,b\nx,1,\n", "column 'b' holds ''");
  expect_error("date,a,b\nx,nan,1\n", "not a finite number");
  expect_error("date,a,b\n", "no data rows");
  expect_error("", "empty file");
  EXPECT_THROW(read_time_series_csv((dir_ / "missing.csv").string()), c10::Error);
}

TEST_F(TimeSeriesFiles, WindowsAreZScoredWithTrainingStatisticsAndStartInLenBeforeTheirSplit) {
  std::string csv = "date,x,y,constant\n";
  for (int i = 0; i < 30; ++i)
    csv += "d" + std::to_string(i) + "," + std::to_string(i) + "," + std::to_string(i * i) + ",7\n";
  const auto table = read_time_series_csv(write("s.csv", csv));
  const SplitRows rows{20, 5, 5};
  const ForecastWindows train(table, rows, SeriesSplit::kTrain, 4, 2), val(table, rows, SeriesSplit::kVal, 4, 2),
      test(table, rows, SeriesSplit::kTest, 4, 2);
  // Hand computation: x = 0..19 has mean 9.5 and population variance (20^2 - 1) / 12 = 33.25.
  EXPECT_NEAR(train.mean()[0].item<double>(), 9.5, 1e-12);
  EXPECT_NEAR(train.std()[0].item<double>(), std::sqrt(33.25), 1e-12);
  EXPECT_EQ(train.std()[2].item<double>(), 1.0);  // a constant column is centred, not divided by 0
  EXPECT_EQ(train.size(), 20 - 4 - 2 + 1);
  EXPECT_EQ(val.size(), 5 + 4 - 4 - 2 + 1);
  EXPECT_EQ(test.size(), 5 + 4 - 4 - 2 + 1);
  // The first validation target is table row 20; the first test target row 25; inputs are the 4 rows before.
  const auto [vx, vy] = val.batch(at::tensor({0L}));
  EXPECT_NEAR(vy[0][0][0].item<double>(), (20 - 9.5) / std::sqrt(33.25), 1e-6);
  EXPECT_NEAR(vx[0][0][0].item<double>(), (16 - 9.5) / std::sqrt(33.25), 1e-6);
  const auto [tx, ty] = test.batch(at::tensor({test.size() - 1}));
  EXPECT_NEAR(ty[0][1][0].item<double>(), (29 - 9.5) / std::sqrt(33.25), 1e-6);  // the table's last row
  EXPECT_EQ(tx.sizes(), (std::vector<int64_t>{1, 4, 3}));
  EXPECT_THROW(val.batch(at::tensor({val.size()})), c10::Error);
  EXPECT_THROW(ForecastWindows(table, {20, 5, 6}, SeriesSplit::kTrain, 4, 2), c10::Error);  // more rows than held
  EXPECT_THROW(ForecastWindows(table, rows, SeriesSplit::kVal, 21, 2), c10::Error);  // in_len beyond the train split
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto [rx, ry] = train.random_batch(8, gen);
  EXPECT_EQ(ry.sizes(), (std::vector<int64_t>{8, 2, 3}));
}

TEST(TimeSeriesData, PublishedSplitsOfTheSharedDatasets) {
  const auto dir = shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "../shared/data is absent: ETT/WTH checks skipped";
  const auto etth1 = read_time_series_csv(time_series_path(dir, "etth1"));
  EXPECT_EQ(etth1.columns, (std::vector<std::string>{"HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"}));
  EXPECT_EQ(published_split("etth1").train, 8640);
  EXPECT_EQ(published_split("etth1").val, 2880);
  EXPECT_EQ(published_split("etth1").test, 2880);
  EXPECT_EQ(published_split("ettm1").train, 34560);
  const ForecastWindows train(etth1, published_split("etth1"), SeriesSplit::kTrain, 168, 24);
  EXPECT_EQ(train.size(), 8640 - 168 - 24 + 1);
  EXPECT_LE(train.rows().mean(0).abs().max().item<double>(), 1e-4);  // z-scored on exactly these rows
  const ForecastWindows test(etth1, published_split("etth1"), SeriesSplit::kTest, 168, 24);
  EXPECT_EQ(test.size(), 2880 - 24 + 1);
  EXPECT_EQ(etth1.dates[8640 + 2880], "2017-10-24 00:00:00");  // the first test target: 480 days (16 x 30) in
  const auto wth = read_time_series_csv(time_series_path(dir, "wth"));
  EXPECT_EQ(wth.columns.size(), 12u);
  EXPECT_GE(wth.values.size(0), 20160 + 7200 + 7200);
  EXPECT_THROW(time_series_path(dir, "traffic"), c10::Error);
}

}  // namespace
}  // namespace outeffhop::data
