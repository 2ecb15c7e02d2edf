// Tokenizers. WordPiece as BERT does it (Hugging Face's BertTokenizer / tokenizers' BertNormalizer +
// BertPreTokenizer + WordPiece): clean the text (drop NUL, U+FFFD and control characters, whitespace -> space), space
// out CJK ideographs, lower-case and strip accents (NFD, drop combining marks), split on whitespace and around every
// punctuation character, then per word the greedy longest-match WordPiece with "##" continuations; a word with a piece
// not in the vocabulary, or longer than 100 characters, becomes [UNK].
//
// GPT-2's byte-level BPE (Hugging Face's GPT2Tokenizer / tokenizers' ByteLevel + BPE): split the text with GPT-2's
// pattern (contractions, letters, numbers, other symbols, each optionally after one space; whitespace runs), map each
// piece's bytes to GPT-2's printable byte alphabet, and merge adjacent symbols by the rank of the merge in merges.txt.
//
// A sentencepiece BPE (Kudo & Richardson 2018, the library libsentencepiece): trained on a text file, or loaded.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

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

class Gpt2BpeTokenizer {
 public:
  // vocab.json (token -> id) and merges.txt (one merge "a b" per line, by rank; a "#version" first line is skipped).
  // Throws naming the file when unreadable or malformed.
  Gpt2BpeTokenizer(const std::string& vocab_json_path, const std::string& merges_path);

  std::vector<int64_t> encode(const std::string& utf8_text) const;
  std::string decode(const std::vector<int64_t>& ids) const;  // the original bytes
  std::vector<std::string> pre_tokenize(const std::string& utf8_text) const;  // the pieces, as UTF-8 text

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  std::vector<std::string> bpe(const std::string& piece) const;  // piece: UTF-8 text -> byte-alphabet symbols merged

  std::unordered_map<std::string, int64_t> ids_;
  std::vector<std::string> tokens_;               // id -> token (byte-alphabet UTF-8)
  std::map<std::pair<std::string, std::string>, int64_t> ranks_;
  std::vector<std::string> byte_symbol_;          // byte -> its symbol (UTF-8 of one code point)
  std::unordered_map<std::string, uint8_t> symbol_byte_;
};

class SentencePieceBpe {
 public:
  // Trains a BPE model of vocab_size pieces (with <unk>, <s>, </s>) on a UTF-8 text file, one sentence or paragraph per
  // line, and writes model_path. Throws with sentencepiece's message on failure.
  static void train(const std::string& text_path, const std::string& model_path, int64_t vocab_size);

  explicit SentencePieceBpe(const std::string& model_path);  // throws naming the file when it is not a model
  ~SentencePieceBpe();

  std::vector<int64_t> encode(const std::string& utf8_text) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  int64_t size() const;
  int64_t bos_id() const;
  // FNV-1a 64 (16 hex digits) of the pieces and their scores: equal for models that tokenize alike, unlike the file,
  // which also records the paths it was trained with.
  std::string fingerprint() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace outeffhop::data
