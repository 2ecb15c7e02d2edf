// Tokenizers. WordPiece as BERT does it (Hugging Face's BertTokenizer / tokenizers' BertNormalizer +
// BertPreTokenizer + WordPiece): clean the text (drop NUL, U+FFFD and control characters, whitespace -> space), space
// out CJK ideographs, lower-case and strip accents (NFD, drop combining marks), split on whitespace and around every
// punctuation character, then per word the greedy longest-match WordPiece with "##" continuations; a word with a piece
// not in the vocabulary, or longer than 100 characters, becomes [UNK].
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace outeffhop::data {

class WordPieceTokenizer {
 public:
  // vocab: one token per line; the line number is the id (BERT's vocab.txt). Throws naming the file when unreadable,
  // empty, or without [UNK].
  explicit WordPieceTokenizer(const std::string& vocab_path, bool lowercase = true);

  std::vector<std::string> tokenize(const std::string& utf8_text) const;  // the WordPiece tokens
  std::vector<int64_t> encode(const std::string& utf8_text) const;        // their ids (no [CLS] / [SEP] added)
  // The basic tokenizer alone: normalised words and punctuation, before WordPiece.
  std::vector<std::string> split_words(const std::string& utf8_text) const;

  int64_t id(const std::string& token) const;  // throws when the token is not in the vocabulary
  const std::string& token(int64_t id) const;
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
  int64_t unk_ = 0;
  bool lowercase_ = true;
};

}  // namespace outeffhop::data
