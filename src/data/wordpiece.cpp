// BERT's WordPiece tokenizer (see tokenizers.h). Unicode properties (categories, NFD, lower case) come from ICU.
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <fstream>
#include <stdexcept>

#include "outeffhop/tokenizers.h"

namespace outeffhop::data {
namespace {

constexpr size_t kMaxWordChars = 100;  // BERT's max_input_chars_per_word

bool is_whitespace(UChar32 c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || u_charType(c) == U_SPACE_SEPARATOR;
}

bool is_control(UChar32 c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  const auto type = u_charType(c);
  return type == U_CONTROL_CHAR || type == U_FORMAT_CHAR;
}

// BERT counts every non-alphanumeric ASCII character as punctuation, plus Unicode's P* categories.
bool is_punctuation(UChar32 c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  return U_GET_GC_MASK(c) & U_GC_P_MASK;
}

bool is_cjk(UChar32 c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::string to_utf8(const icu::UnicodeString& s) {
  std::string out;
  s.toUTF8String(out);
  return out;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(const std::string& vocab_path, bool lowercase) : lowercase_(lowercase) {
  std::ifstream in(vocab_path);
  if (!in) throw std::runtime_error(vocab_path + ": cannot read the WordPiece vocabulary");
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ids_.emplace(line, static_cast<int64_t>(tokens_.size()));
    tokens_.push_back(line);
  }
  if (tokens_.empty()) throw std::runtime_error(vocab_path + ": empty WordPiece vocabulary");
  const auto unk = ids_.find("[UNK]");
  if (unk == ids_.end()) throw std::runtime_error(vocab_path + ": the vocabulary has no [UNK] token");
  unk_ = unk->second;
}

std::vector<std::string> WordPieceTokenizer::split_words(const std::string& utf8_text) const {
  UErrorCode status = U_ZERO_ERROR;
  const auto* nfd = icu::Normalizer2::getNFDInstance(status);
  if (U_FAILURE(status)) throw std::runtime_error("WordPiece: ICU has no NFD normaliser");
  // Normalise: clean, space out CJK, then lower-case and strip accents (Hugging Face's BertNormalizer order).
  const auto text = icu::UnicodeString::fromUTF8(utf8_text);
  icu::UnicodeString cleaned;
  for (int32_t i = 0; i < text.length(); i = text.moveIndex32(i, 1)) {
    const UChar32 c = text.char32At(i);
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      cleaned.append(static_cast<UChar32>(' '));
    } else if (is_cjk(c)) {
      cleaned.append(static_cast<UChar32>(' ')).append(c).append(static_cast<UChar32>(' '));
    } else {
      cleaned.append(c);
    }
  }
  if (lowercase_) {
    icu::UnicodeString decomposed = nfd->normalize(cleaned, status);
    if (U_FAILURE(status)) throw std::runtime_error("WordPiece: NFD normalisation failed");
    cleaned.remove();
    for (int32_t i = 0; i < decomposed.length(); i = decomposed.moveIndex32(i, 1)) {
      const UChar32 c = decomposed.char32At(i);
      if (u_charType(c) != U_NON_SPACING_MARK) cleaned.append(c);
    }
    cleaned.toLower(icu::Locale::getRoot());
  }
  // Pre-tokenize: whitespace separates, punctuation stands alone.
  std::vector<std::string> words;
  icu::UnicodeString word;
  auto flush = [&] {
    if (!word.isEmpty()) words.push_back(to_utf8(word));
    word.remove();
  };
  for (int32_t i = 0; i < cleaned.length(); i = cleaned.moveIndex32(i, 1)) {
    const UChar32 c = cleaned.char32At(i);
    if (is_whitespace(c)) {
      flush();
    } else if (is_punctuation(c)) {
      flush();
      word.append(c);
      flush();
    } else {
      word.append(c);
    }
  }
  flush();
  return words;
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& utf8_text) const {
  std::vector<std::string> out;
  for (const auto& w : split_words(utf8_text)) {
    const auto word = icu::UnicodeString::fromUTF8(w);
    if (static_cast<size_t>(word.countChar32()) > kMaxWordChars) {
      out.push_back(tokens_[unk_]);
      continue;
    }
    std::vector<std::string> pieces;
    bool unknown = false;
    for (int32_t start = 0; start < word.length() && !unknown;) {
      // The longest vocabulary entry starting at `start`, shrinking one code point at a time.
      int32_t end = word.length();
      std::string found;
      while (end > start) {
        auto piece = to_utf8(word.tempSubStringBetween(start, end));
        if (start > 0) piece = "##" + piece;
        if (ids_.count(piece)) {
          found = std::move(piece);
          break;
        }
        end = word.moveIndex32(end, -1);
      }
      if (found.empty()) {
        unknown = true;
      } else {
        pieces.push_back(std::move(found));
        start = end;
      }
    }
    if (unknown) {
      out.push_back(tokens_[unk_]);
    } else {
      out.insert(out.end(), pieces.begin(), pieces.end());
    }
  }
  return out;
}

std::vector<int64_t> WordPieceTokenizer::encode(const std::string& utf8_text) const {
  std::vector<int64_t> ids;
  for (const auto& t : tokenize(utf8_text)) ids.push_back(ids_.at(t));
  return ids;
}

int64_t WordPieceTokenizer::id(const std::string& token) const {
  const auto it = ids_.find(token);
  if (it == ids_.end()) throw std::runtime_error("WordPiece: '" + token + "' is not in the vocabulary");
  return it->second;
}

const std::string& WordPieceTokenizer::token(int64_t id) const {
  if (id < 0 || id >= size()) throw std::runtime_error("WordPiece: id " + std::to_string(id) + " out of range");
  return tokens_[static_cast<size_t>(id)];
}

}  // namespace outeffhop::data
