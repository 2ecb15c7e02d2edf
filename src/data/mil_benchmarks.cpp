// The Fox / Elephant / Tiger multiple-instance benchmarks from the shared data folder (PRTools dataset objects in a
// zip of MAT v5 files): data holds the instances, ident.milbag the bag of each, nlab the instance label index.
#include <ATen/ATen.h>

#include <stdexcept>

#include "outeffhop/data.h"

namespace outeffhop::data {
namespace {

// Row r of a MATLAB char matrix (stored column-major), trailing blanks dropped.
std::string char_row(const MatValue& v, int64_t r) {
  const int64_t rows = v.dims.at(0), cols = v.dims.at(1);
  std::string row;
  for (int64_t c = 0; c < cols; ++c) row.push_back(v.text.at(c * rows + r));
  return row.substr(0, row.find_last_not_of(' ') + 1);
}

}  // namespace

MilBenchmark read_mil_benchmark(const std::string& data_dir, const std::string& name) {
  if (name != "fox" && name != "elephant" && name != "tiger")
    throw std::runtime_error("unknown MIL benchmark '" + name + "'; known: fox, elephant, tiger");
  if (data_dir.empty()) throw std::runtime_error("the " + name + " benchmark needs --data-dir (e.g. ../shared/data)");
  const std::string zip = data_dir + "/mil/fox_elephant_tiger_mat.zip";
  const auto values = read_mat5(read_zip_entry(zip, name + ".mat"), zip + ":" + name + ".mat");
  if (values.empty()) throw std::runtime_error(zip + ": " + name + ".mat holds no variable");
  const auto& ds = values.front();
  const auto& data = ds.field("data");
  const int64_t n = data.dims.at(0), d = data.dims.at(1);
  if (static_cast<int64_t>(data.numbers.size()) != n * d) throw std::runtime_error(name + ": data size mismatch");
  const auto column_major = at::tensor(data.numbers, at::kDouble).view({d, n});
  const auto& labels = ds.field("lablist").cells.at(0);
  int64_t positive_index = 0;  // 1-based row of "positive" in lablist
  for (int64_t r = 0; r < labels.dims.at(0); ++r)
    if (char_row(labels, r) == "positive") positive_index = r + 1;
  if (positive_index == 0) throw std::runtime_error(name + ": no 'positive' label in lablist");
  const auto& bags = ds.field("ident").field("milbag").numbers;
  const auto& nlab = ds.field("nlab").numbers;
  if (static_cast<int64_t>(bags.size()) != n || static_cast<int64_t>(nlab.size()) != n)
    throw std::runtime_error(name + ": ident.milbag or nlab does not have one entry per instance");
  MilBenchmark out;
  out.instances = column_major.t().contiguous().to(at::kFloat);
  out.bag = at::tensor(bags, at::kDouble).to(at::kLong) - 1;
  out.positive = at::tensor(nlab, at::kDouble).eq(static_cast<double>(positive_index));
  return out;
}

}  // namespace outeffhop::data
