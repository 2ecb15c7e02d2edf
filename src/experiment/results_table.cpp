// The result tables of a task (see results_table.h): one row per variant, mean ± population std over seeds, in the
// layout of the paper's Table 1 (Table 2 for forecasting); and each variant against the first, seed by seed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "analysis/mean_std.h"
#include "outeffhop/experiment/results_table.h"

namespace outeffhop::experiment {

using nlohmann::json;

namespace {

// One value is printed bare: a spread over one seed is undefined, not zero. `sign`: a "+" on positive means.
std::string mean_std_cell(const std::vector<double>& v, int digits, bool sign = false) {
  const auto s = analysis::mean_std(v);
  char buf[64];
  if (v.size() == 1)
    std::snprintf(buf, sizeof buf, sign ? "%+.*f" : "%.*f", digits, s.mean);
  else
    std::snprintf(buf, sizeof buf, sign ? "%+.*f ± %.*f" : "%.*f ± %.*f", digits, s.mean, digits, s.std);
  return buf;
}

// The quantization a result's "w8a8" pass simulated: the paper's W8A8 unless its "w8a8_bits" says otherwise.
std::string scheme_of(const json& r) {
  if (!r.contains("w8a8_bits")) return "W8A8";
  EvaluationOptions e;
  e.weight_bits = r["w8a8_bits"]["weights"].get<int64_t>();
  e.activation_bits = r["w8a8_bits"]["activations"].get<int64_t>();
  e.per_channel_weights = r["w8a8_bits"]["weight_granularity"] == "channel";
  e.per_row_tables = r["w8a8_bits"].value("table_granularity", "tensor") == "row";  // absent before session 38
  return e.widths();
}

// The schemes of `results` in the order first seen, joined by " / " (more than one: runs evaluated differently).
std::string scheme_label(const std::vector<json>& results) {
  std::vector<std::string> schemes;
  for (const auto& r : results)
    if (const auto s = scheme_of(r); std::find(schemes.begin(), schemes.end(), s) == schemes.end())
      schemes.push_back(s);
  std::string label;
  for (const auto& s : schemes) label += (label.empty() ? "" : " / ") + s;
  return label.empty() ? "W8A8" : label;
}

// A forecasting task's table: MSE and MAE per precision (Table 2's measures), the W8A8 output change, outliers, and
// with early stopping the step of the best validation loss (the model evaluated; the last step: still improving).
std::string forecast_table(const std::vector<json>& results, const std::vector<std::string>& variants) {
  const bool stopping =
      std::any_of(results.begin(), results.end(), [](const json& r) { return r.contains("early_stopping"); });
  const auto q = scheme_label(results);
  std::ostringstream md;
  md << "| variant | FP32 MSE | FP32 MAE | FP16 MSE | BF16 MSE | " << q << " MSE | " << q << " MAE | " << q
     << " output change % | avg kurtosis | max inf-norm |" << (stopping ? " best validation step |" : "")
     << " seeds |\n|---|---|---|---|---|---|---|---|---|---|---|" << (stopping ? "---|" : "") << "\n";
  for (const auto& v : variants) {
    std::map<std::string, std::vector<double>> col;
    for (const auto& r : results) {
      if (r["variant"] != v) continue;
      for (const char* p : {"fp32", "fp16", "bf16", "w8a8"}) col[std::string(p) + " mse"].push_back(r[p]["mse"]);
      col["fp32 mae"].push_back(r["fp32"]["mae"]);
      col["w8a8 mae"].push_back(r["w8a8"]["mae"]);
      col["change"].push_back(100 * r["w8a8"]["output_change"].get<double>());
      col["kurt"].push_back(r["outliers"]["avg_kurtosis"]);
      col["inf"].push_back(r["outliers"]["max_inf_norm"]);
      if (r.contains("early_stopping")) col["best step"].push_back(r["early_stopping"]["best_step"]);
    }
    if (col["fp32 mse"].empty()) continue;
    md << "| " << v;
    for (const char* k : {"fp32 mse", "fp32 mae", "fp16 mse", "bf16 mse", "w8a8 mse", "w8a8 mae"})
      md << " | " << mean_std_cell(col[k], 4);
    md << " | " << mean_std_cell(col["change"], 2) << " | " << mean_std_cell(col["kurt"], 2) << " | "
       << mean_std_cell(col["inf"], 2) << " | ";
    if (stopping) md << (col["best step"].empty() ? "–" : mean_std_cell(col["best step"], 0)) << " | ";
    md << col["fp32 mse"].size() << " |\n";
  }
  return md.str();
}

// The differences variant − baseline of `of` over the seeds both have (those seeds into `seeds`, when given).
std::vector<double> paired_differences(const std::vector<json>& results, const std::string& variant,
                                       const std::string& baseline, const std::function<double(const json&)>& of,
                                       std::vector<int64_t>* seeds = nullptr) {
  std::vector<double> diff;
  for (const auto& r : results)
    if (r["variant"] == variant)
      for (const auto& base : results)
        if (base["variant"] == baseline && base["seed"] == r["seed"]) {
          diff.push_back(of(r) - of(base));
          if (seeds) seeds->push_back(r["seed"].get<int64_t>());
        }
  return diff;
}

std::string lower_count(const std::vector<double>& diff) {
  return std::to_string(std::count_if(diff.begin(), diff.end(), [](double x) { return x < 0; })) + "/" +
         std::to_string(diff.size());
}

double max_inf_norm(const json& r) { return r["outliers"]["max_inf_norm"].get<double>(); }
double avg_kurtosis(const json& r) { return r["outliers"]["avg_kurtosis"].get<double>(); }
// What W8A8 costs a model whose output is a distribution (not a forecast): its KL from FP32, in millinats.
double w8a8_kl_mnats(const json& r) { return 1e3 * r["w8a8"]["kl"].get<double>(); }
bool all_have_w8a8_kl(const std::vector<json>& results) {
  return std::all_of(results.begin(), results.end(),
                     [](const json& r) { return r.contains("w8a8") && r["w8a8"].contains("kl"); });
}

// A result's pass `p` ("fp32", "w8a8") on the further evaluation set `name`, or null when it has none.
const json* extra_pass(const json& r, const std::string& name, const char* p) {
  if (!r.contains("extra") || !r["extra"].contains(name) || !r["extra"][name].contains(p)) return nullptr;
  return &r["extra"][name][p];
}

// The further evaluation sets (Task::extra_evaluations) any result has, by name.
std::set<std::string> extra_set_names(const std::vector<json>& results) {
  std::set<std::string> names;
  for (const auto& r : results)
    if (r.contains("extra"))
      for (const auto& [name, e] : r["extra"].items()) names.insert(name);
  return names;
}

// The W8A8 KL on the further evaluation set `name` (the held-out books: the in-domain cost), and the sets on which
// every result has one: the paired measures.
double extra_w8a8_kl_mnats(const json& r, const std::string& name) {
  return 1e3 * (*extra_pass(r, name, "w8a8"))["kl"].get<double>();
}
std::vector<std::string> extra_sets_with_kl(const std::vector<json>& results) {
  std::vector<std::string> names;
  for (const auto& name : extra_set_names(results))
    if (std::all_of(results.begin(), results.end(), [&](const json& r) {
          const auto* w8a8 = extra_pass(r, name, "w8a8");
          return w8a8 && w8a8->contains("kl");
        }))
      names.push_back(name);
  return names;
}

}  // namespace

std::string results_table(const Task& task, const std::vector<json>& results,
                          const std::vector<std::string>& variants) {
  if (task.regression()) return forecast_table(results, variants);
  const bool int8 = std::any_of(results.begin(), results.end(), [](const json& r) { return r.contains("int8"); });
  const auto extras = extra_set_names(results);  // FP32, W8A8 and W8A8 KL columns each
  const auto m = task.metric_name();
  const auto q = scheme_label(results);
  std::ostringstream md;
  md << "| variant | FP32 " << m << " | FP16 " << m << " | BF16 " << m << " | " << q << " " << m << " | " << q
     << " KL (mnats) | " << q << " same top-1 % |" << (int8 ? " INT8 " + m + " | INT8 forward speedup |" : "");
  for (const auto& name : extras)
    md << " FP32 " << name << " " << m << " | " << q << " " << name << " " << m << " | " << q << " " << name
       << " KL (mnats) |";
  md << " avg kurtosis | max inf-norm | seeds |\n|---|---|---|---|---|---|---|" << (int8 ? "---|---|" : "");
  for (size_t i = 0; i < extras.size(); ++i) md << "---|---|---|";
  md << "---|---|---|\n";
  auto cell = [](const std::vector<double>& v, int digits) { return mean_std_cell(v, digits); };
  for (const auto& v : variants) {
    std::map<std::string, std::vector<double>> col;
    for (const auto& r : results) {
      if (r["variant"] != v) continue;
      for (const char* p : {"fp32", "fp16", "bf16", "w8a8"}) col[p].push_back(r[p]["metric"].get<double>());
      for (const auto& name : extras)
        for (const char* p : {"fp32", "w8a8"})
          if (const auto* e = extra_pass(r, name, p)) {
            col[name + " " + p].push_back((*e)["metric"].get<double>());
            if (e->contains("kl")) col[name + " kl"].push_back(1e3 * (*e)["kl"].get<double>());
          }
      col["kl"].push_back(1e3 * r["w8a8"]["kl"].get<double>());
      col["top1"].push_back(100 * r["w8a8"]["same_top1"].get<double>());
      if (r.contains("int8")) col["int8"].push_back(r["int8"]["metric"].get<double>());
      if (r.contains("int8_forward_ms"))
        col["speedup"].push_back(r["fp32_forward_ms"].get<double>() / r["int8_forward_ms"].get<double>());
      col["kurt"].push_back(r["outliers"]["avg_kurtosis"].get<double>());
      col["inf"].push_back(r["outliers"]["max_inf_norm"].get<double>());
    }
    if (col["fp32"].empty()) continue;
    auto opt = [&](const std::string& k, int digits) {
      return col[k].empty() ? std::string("–") : cell(col[k], digits);
    };
    md << "| " << v << " | " << cell(col["fp32"], 3) << " | " << cell(col["fp16"], 3) << " | " << cell(col["bf16"], 3)
       << " | " << cell(col["w8a8"], 3) << " | " << cell(col["kl"], 2) << " | " << cell(col["top1"], 2) << " | ";
    if (int8) md << opt("int8", 3) << " | " << opt("speedup", 2) << " | ";
    for (const auto& name : extras)
      md << opt(name + " fp32", 3) << " | " << opt(name + " w8a8", 3) << " | " << opt(name + " kl", 2) << " | ";
    md << cell(col["kurt"], 2) << " | " << cell(col["inf"], 2) << " | " << col["fp32"].size() << " |\n";
  }
  return md.str();
}

std::string paired_table(const std::vector<json>& results, const std::vector<std::string>& variants,
                         const std::string& metric) {
  if (variants.size() < 2) return "";
  struct Measure {
    std::string name;
    int digits;
    std::function<double(const json& result)> of;
  };
  // Decimals for the metric by its size: 4 for an MSE or ppl/byte, 2 for a top-1 %, 1 for a perplexity in thousands.
  double size = 0;
  for (const auto& r : results)
    if (r["variant"] == variants[0]) size = std::abs(r["fp32"]["metric"].get<double>());
  const int digits = size < 10 ? 4 : size < 100 ? 2 : 1;
  const auto q = scheme_label(results);
  std::vector<Measure> measures = {
      {"FP32 " + metric, digits, [](const json& r) { return r["fp32"]["metric"].get<double>(); }},
      {q + " " + metric, digits, [](const json& r) { return r["w8a8"]["metric"].get<double>(); }}};
  if (all_have_w8a8_kl(results)) measures.push_back({q + " KL (mnats)", 2, w8a8_kl_mnats});
  // Each further evaluation set's W8A8 KL, where every result has it (the held-out books: the in-domain cost).
  for (const auto& name : extra_sets_with_kl(results))
    measures.push_back(
        {q + " " + name + " KL (mnats)", 2, [name](const json& r) { return extra_w8a8_kl_mnats(r, name); }});
  measures.push_back({"avg kurtosis", 3, avg_kurtosis});
  measures.push_back({"max inf-norm", 3, max_inf_norm});
  std::ostringstream rows;
  for (size_t i = 1; i < variants.size(); ++i) {
    std::vector<std::vector<double>> diff;
    for (const auto& m : measures) diff.push_back(paired_differences(results, variants[i], variants[0], m.of));
    if (diff[0].empty()) continue;
    rows << "| " << variants[i];
    for (size_t k = 0; k < measures.size(); ++k) rows << " | " << mean_std_cell(diff[k], measures[k].digits, true);
    for (const auto& d : diff) rows << " | " << lower_count(d);
    rows << " |\n";
  }
  if (rows.str().empty()) return "";
  std::string table = "| variant − " + variants[0] + ", same seed";
  for (const auto& m : measures) table += " | Δ " + m.name;
  for (const auto& m : measures) table += " | lower " + m.name;
  table += " |\n|---|";
  for (size_t k = 0; k < 2 * measures.size(); ++k) table += "---|";
  return table + "\n" + rows.str();
}

std::string forecast_summary_table(const std::vector<std::string>& tasks, const std::vector<std::vector<json>>& results,
                                  const std::vector<std::string>& variants) {
  std::ostringstream md;
  md << "| task";
  for (const auto& v : variants) md << " | " << v << " MSE | " << v << " MAE";
  md << " |\n|---|";
  for (size_t k = 0; k < 2 * variants.size(); ++k) md << "---|";
  md << "\n";
  bool any = false;
  for (size_t t = 0; t < tasks.size(); ++t) {
    std::vector<std::vector<double>> mse(variants.size()), mae(variants.size());
    for (const auto& r : results[t])
      for (size_t i = 0; i < variants.size(); ++i)
        if (r["variant"] == variants[i]) mse[i].push_back(r["fp32"]["mse"]), mae[i].push_back(r["fp32"]["mae"]);
    size_t most_seeds = 0;
    for (const auto& m : mse) most_seeds = std::max(most_seeds, m.size());
    if (most_seeds == 0) continue;
    any = true;
    // Each variant's means (NaN without runs) and the lowest of each kind.
    std::vector<double> mse_mean(variants.size(), NAN), mae_mean(variants.size(), NAN);
    double best_mse = INFINITY, best_mae = INFINITY;
    for (size_t i = 0; i < variants.size(); ++i) {
      if (mse[i].empty()) continue;
      mse_mean[i] = analysis::mean_std(mse[i]).mean, mae_mean[i] = analysis::mean_std(mae[i]).mean;
      best_mse = std::min(best_mse, mse_mean[i]), best_mae = std::min(best_mae, mae_mean[i]);
    }
    md << "| " << tasks[t];
    for (size_t i = 0; i < variants.size(); ++i) {
      if (mse[i].empty()) {
        md << " | – | –";
        continue;
      }
      const auto n = mse[i].size();
      const std::string seeds = n < most_seeds ? " (" + std::to_string(n) + (n == 1 ? " seed)" : " seeds)") : "";
      for (const auto& [col, bold] :
           {std::pair{&mse[i], mse_mean[i] == best_mse}, std::pair{&mae[i], mae_mean[i] == best_mae}})
        md << " | " << (bold ? "**" : "") << mean_std_cell(*col, 4) << (bold ? "**" : "") << seeds;
    }
    md << " |\n";
  }
  return any ? md.str() : "";
}

json paired_outliers(const std::vector<std::string>& tasks, const std::vector<std::vector<json>>& results,
                     const std::vector<std::vector<std::string>>& variants) {
  auto family = [](const std::string& v) { return v.substr(0, v.find('(')); };
  json paired = json::array();
  for (size_t t = 0; t < tasks.size(); ++t) {
    json task = {{"task", tasks[t]},
                 {"baseline", variants[t][0]},
                 {"scheme", scheme_label(results[t])},
                 {"variants", json::array()}};
    std::vector<std::string> columns;  // this task's, the baseline's first: a family seen twice gets full names
    for (size_t i = 0; i < variants[t].size(); ++i) {
      auto column = family(variants[t][i]);
      if (std::find(columns.begin(), columns.end(), column) != columns.end()) column = variants[t][i];
      columns.push_back(column);
      if (i == 0) continue;
      std::vector<int64_t> seeds;
      const auto inf_norm = paired_differences(results[t], variants[t][i], variants[t][0], max_inf_norm, &seeds);
      if (seeds.empty()) continue;
      json entry = {{"variant", variants[t][i]},
                    {"column", column},
                    {"seeds", seeds},
                    {"max_inf_norm", inf_norm},
                    {"avg_kurtosis", paired_differences(results[t], variants[t][i], variants[t][0], avg_kurtosis)}};
      if (all_have_w8a8_kl(results[t]))
        entry["w8a8_kl_mnats"] = paired_differences(results[t], variants[t][i], variants[t][0], w8a8_kl_mnats);
      for (const auto& name : extra_sets_with_kl(results[t]))
        entry["extra_w8a8_kl_mnats"][name] =
            paired_differences(results[t], variants[t][i], variants[t][0],
                               [&name](const json& r) { return extra_w8a8_kl_mnats(r, name); });
      task["variants"].push_back(entry);
    }
    if (!task["variants"].empty()) paired.push_back(task);
  }
  return paired;
}

std::string outlier_summary_tables(const json& paired) {
  if (paired.empty()) return "";
  std::vector<std::string> columns;  // every task's, in the order first seen
  for (const auto& task : paired)
    for (const auto& v : task["variants"])
      if (const auto c = v["column"].get<std::string>(); std::find(columns.begin(), columns.end(), c) == columns.end())
        columns.push_back(c);
  // The KL tables' scheme: the tasks' one, or "quantized" with each task's row naming its own.
  std::set<std::string> schemes;
  for (const auto& task : paired) schemes.insert(task["scheme"].get<std::string>());
  const std::string q = schemes.size() == 1 ? *schemes.begin() : "quantized";
  // Each measure's differences in a variant's entry, or null where its task has none (forecasts: no KL).
  using Differences = std::function<const json*(const json& variant)>;
  std::vector<std::pair<std::string, Differences>> measures;
  for (const auto& [label, key] : {std::pair<std::string, std::string>{"max inf-norm", "max_inf_norm"},
                                   {"avg kurtosis", "avg_kurtosis"},
                                   {q + " KL (mnats)", "w8a8_kl_mnats"}})
    measures.emplace_back(label, [k = key](const json& v) { return v.contains(k) ? &v[k] : nullptr; });
  std::set<std::string> extra_sets;
  for (const auto& task : paired)
    for (const auto& v : task["variants"])
      if (v.contains("extra_w8a8_kl_mnats"))
        for (const auto& [name, diff] : v["extra_w8a8_kl_mnats"].items()) extra_sets.insert(name);
  for (const auto& name : extra_sets)
    measures.emplace_back(q + " " + name + " KL (mnats)", [name](const json& v) {
      const auto extra = v.find("extra_w8a8_kl_mnats");
      return extra != v.end() && extra->contains(name) ? &extra->at(name) : nullptr;
    });
  std::string tables;
  for (const auto& [name, of] : measures) {
    const auto has = [&of](const json& task) { return of(task["variants"][0]) != nullptr; };
    if (std::none_of(paired.begin(), paired.end(), has)) continue;
    tables += std::string(tables.empty() ? "" : "\n") + "Δ " + name + ", variant − baseline:\n\n| task | baseline";
    for (const auto& c : columns) tables += " | " + c;
    tables += " |\n|---|---|";
    for (size_t k = 0; k < columns.size(); ++k) tables += "---|";
    tables += "\n";
    for (const auto& task : paired) {
      if (!has(task)) continue;
      std::vector<std::string> cells(columns.size(), "–");
      for (const auto& v : task["variants"]) {
        const auto diff = of(v)->get<std::vector<double>>();
        cells[std::find(columns.begin(), columns.end(), v["column"].get<std::string>()) - columns.begin()] =
            mean_std_cell(diff, 2, true) + " (" + lower_count(diff) + ")";
      }
      tables += "| " + task["task"].get<std::string>() +
                (schemes.size() == 1 ? "" : " (" + task["scheme"].get<std::string>() + ")") + " | " +
                task["baseline"].get<std::string>();
      for (const auto& c : cells) tables += " | " + c;
      tables += " |\n";
    }
  }
  return tables;
}

}  // namespace outeffhop::experiment
