// `outeffhop logits`: the logits of a saved model for one input, as JSON (for comparisons with other
// implementations, e.g. Hugging Face's OPT and ViT on the same weights).
#include <ATen/ATen.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "saved_model.h"

namespace outeffhop::cli {

void add_logits(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto ids = std::make_shared<std::vector<int64_t>>();
  auto images = std::make_shared<std::string>();
  auto types = std::make_shared<std::vector<int64_t>>();
  auto* cmd = app.add_subcommand("logits",
                                 "Print, as JSON, the logits of a saved model: per position for token ids "
                                 "(OPT, BERT), per image for images (ViT)");
  cmd->add_option("--checkpoint", *path, "a model.safetensors written by `outeffhop experiment`")
      ->required()
      ->check(CLI::ExistingFile);
  auto* ids_opt = cmd->add_option("--ids", *ids, "token ids of one sequence (lm and bert models)")->delimiter(',');
  cmd->add_option("--types", *types, "segment ids of that sequence (bert; default all 0)")->delimiter(',');
  cmd->add_option("--images", *images, "a safetensors file with a float tensor 'images' B x C x H x W (vit models)")
      ->check(CLI::ExistingFile)
      ->excludes(ids_opt);
  cmd->callback([path, ids, images, types] {
    auto saved = load_saved_model(*path);
    at::Tensor input;
    if (!images->empty()) {
      for (const auto& [name, t] : load_safetensors(*images).tensors)
        if (name == "images") input = t.to(at::kFloat);
      TORCH_CHECK(input.defined(), *images, ": no tensor 'images'");
    } else {
      TORCH_CHECK(!ids->empty(), "logits: give --ids or --images");
      input = at::tensor(*ids, at::kLong).view({1, -1});
      if (saved.config.at("task").at("task") == "bert") {  // ids, segment ids, attention mask
        const auto segments = types->empty() ? at::zeros_like(input) : at::tensor(*types, at::kLong).view({1, -1});
        TORCH_CHECK(segments.sizes() == input.sizes(), "logits: --types needs one segment id per token");
        input = at::stack({input, segments, at::ones_like(input)}, 1);
      }
    }
    torch::NoGradGuard no_grad;
    saved.model.module->eval();
    auto logits = saved.model.logits(input).to(at::kDouble);
    if (images->empty()) logits = logits[0];
    logits = logits.contiguous();
    std::vector<std::vector<double>> rows;
    for (int64_t r = 0; r < logits.size(0); ++r) {
      const auto* row = logits[r].data_ptr<double>();
      rows.emplace_back(row, row + logits.size(1));
    }
    std::cout << nlohmann::json{{"logits", rows}}.dump() << "\n";
  });
}

}  // namespace outeffhop::cli
