// Which activation points feed the outlier statistics, per model family, as the paper hooked them (REFERENCE.md §3),
// and the observer that feeds them to OutlierStats.
#pragma once
#include <functional>
#include <string>

#include "outeffhop/analysis/outlier_stats.h"
#include "outeffhop/nn/activation_points.h"

namespace outeffhop::analysis {

enum class OutlierRows {
  kSkip,
  kPerSample,  // one row per sample: B x ... flattened
  kPerToken,   // one row per token: (B*T) x d (OPT's fc2 and FFN LayerNorm, which see (B*T) x d)
};

// OPT: every block output, self_attn.out_proj and self_attn_layer_norm per sample, fc2 and the FFN LayerNorm
// (final_layer_norm inside a block) per token, and the decoder's final LayerNorm per sample.
OutlierRows opt_outlier_rows(const std::string& point);
// ViT: every module output, per sample (the embeddings, every LayerNorm, Linear, GELU and layer output, and the final
// LayerNorm); not the attention scores and probabilities or the first residual sum, which no module outputs.
OutlierRows vit_outlier_rows(const std::string& point);
// BERT: every layer's FFN output (output.dense) and output LayerNorm, per sample.
OutlierRows bert_outlier_rows(const std::string& point);
// STanHop-Net: every module output, per sample of the module (its first dim: batch x series or batch x segments, as
// the modules see them); not the attention scores and probabilities, which no module outputs.
OutlierRows stanhop_outlier_rows(const std::string& point);

nn::ActivationPoints::Observer outlier_observer(OutlierStats& stats,
                                                std::function<OutlierRows(const std::string&)> rows_of);

}  // namespace outeffhop::analysis
