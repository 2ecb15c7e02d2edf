// `outeffhop tokenize`: token ids of a text file, one JSON array per line (for checks against other tokenizers and for
// looking at what a model sees).
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "outeffhop/tokenizers.h"

namespace outeffhop::cli {

void add_tokenize(CLI::App& app) {
  auto vocab = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  auto tokens = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("tokenize", "WordPiece (BERT) token ids of each line of a text file, as JSON lines");
  cmd->add_option("--wordpiece", *vocab,
                  "a BERT vocab.txt (e.g. ../shared/data/tokenizers/bert-base-uncased-vocab.txt)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--file", *file, "UTF-8 text; each line is tokenized on its own")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_flag("--tokens", *tokens, "print the token strings instead of the ids");
  cmd->callback([vocab, file, tokens] {
    const data::WordPieceTokenizer tokenizer(*vocab);
    std::ifstream in(*file);
    for (std::string line; std::getline(in, line);) {
      if (*tokens)
        std::cout << nlohmann::json(tokenizer.tokenize(line)).dump() << "\n";
      else
        std::cout << nlohmann::json(tokenizer.encode(line)).dump() << "\n";
    }
  });
}

}  // namespace outeffhop::cli
