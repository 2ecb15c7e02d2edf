// Outlier-statistics presets over activation points (see outlier_points.h).
#include "outeffhop/analysis/outlier_points.h"

#include <ATen/ATen.h>

#include <regex>

namespace outeffhop::analysis {

OutlierRows opt_outlier_rows(const std::string& point) {
  static const std::regex block(R"(model\.decoder\.layers\.\d+)");
  static const std::regex per_sample(R"(model\.decoder\.layers\.\d+\.(self_attn\.out_proj|self_attn_layer_norm))");
  static const std::regex per_token(R"(model\.decoder\.layers\.\d+\.(fc2|final_layer_norm))");
  if (point == "model.decoder.final_layer_norm" || std::regex_match(point, block) ||
      std::regex_match(point, per_sample))
    return OutlierRows::kPerSample;
  if (std::regex_match(point, per_token)) return OutlierRows::kPerToken;
  return OutlierRows::kSkip;
}

OutlierRows vit_outlier_rows(const std::string& point) {
  static const std::regex not_module(R"(.*\.(attn_scores|attn_probs|attn_gates|attention_residual))");
  if (point.rfind("vit.", 0) != 0 || std::regex_match(point, not_module)) return OutlierRows::kSkip;
  return OutlierRows::kPerSample;
}

OutlierRows bert_outlier_rows(const std::string& point) {
  static const std::regex hooked(R"(bert\.encoder\.layer\.\d+\.output\.(dense|LayerNorm))");
  return std::regex_match(point, hooked) ? OutlierRows::kPerSample : OutlierRows::kSkip;
}

OutlierRows stanhop_outlier_rows(const std::string& point) {
  static const std::regex not_module(R"(.*\.(attn_scores|attn_probs|attn_gates))");
  return std::regex_match(point, not_module) ? OutlierRows::kSkip : OutlierRows::kPerSample;
}

nn::ActivationPoints::Observer outlier_observer(OutlierStats& stats,
                                                std::function<OutlierRows(const std::string&)> rows_of) {
  return [&stats, rows_of = std::move(rows_of)](const std::string& name, const at::Tensor& x) {
    switch (rows_of(name)) {
      case OutlierRows::kSkip: return;
      case OutlierRows::kPerSample: stats.add(name, x); return;
      case OutlierRows::kPerToken: stats.add(name, x.reshape({-1, x.size(-1)})); return;
    }
  };
}

}  // namespace outeffhop::analysis
