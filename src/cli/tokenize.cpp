// `outeffhop tokenize`: token ids of a text file, one JSON array per line (for checks against other tokenizers and for
// looking at what a model sees).
#include <c10/util/Exception.h>

#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "outeffhop/tokenizers.h"

namespace outeffhop::cli {

void add_tokenize(CLI::App& app) {
  struct Args {
    std::string wordpiece, gpt2_vocab, gpt2_merges, file;
    bool tokens = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("tokenize",
                                 "Token ids of each line of a text file, as JSON lines: BERT's WordPiece or "
                                 "GPT-2's byte-level BPE");
  auto* wordpiece = cmd->add_option("--wordpiece", a->wordpiece,
                                    "a BERT vocab.txt (e.g. ../shared/data/tokenizers/bert-base-uncased-vocab.txt)")
                        ->check(CLI::ExistingFile);
  auto* gpt2 = cmd->add_option("--gpt2-vocab", a->gpt2_vocab, "GPT-2's vocab.json (with --gpt2-merges)")
                   ->check(CLI::ExistingFile)
                   ->excludes(wordpiece);
  cmd->add_option("--gpt2-merges", a->gpt2_merges, "GPT-2's merges.txt")->check(CLI::ExistingFile)->needs(gpt2);
  cmd->add_option("--file", a->file, "UTF-8 text; each line is tokenized on its own")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_flag("--tokens", a->tokens, "WordPiece: print the token strings instead of the ids");
  cmd->callback([a] {
    TORCH_CHECK(!a->wordpiece.empty() || (!a->gpt2_vocab.empty() && !a->gpt2_merges.empty()),
                "tokenize: give --wordpiece VOCAB, or --gpt2-vocab and --gpt2-merges");
    std::function<nlohmann::json(const std::string&)> tokenize;
    if (!a->wordpiece.empty()) {
      auto wp = std::make_shared<data::WordPieceTokenizer>(a->wordpiece);
      tokenize = [wp, a](const std::string& line) {
        return a->tokens ? nlohmann::json(wp->tokenize(line)) : nlohmann::json(wp->encode(line));
      };
    } else {
      auto bpe = std::make_shared<data::Gpt2BpeTokenizer>(a->gpt2_vocab, a->gpt2_merges);
      tokenize = [bpe](const std::string& line) { return nlohmann::json(bpe->encode(line)); };
    }
    std::ifstream in(a->file);
    for (std::string line; std::getline(in, line);) std::cout << tokenize(line).dump() << "\n";
  });
}

}  // namespace outeffhop::cli
