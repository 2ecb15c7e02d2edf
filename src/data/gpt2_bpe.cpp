// GPT-2's byte-level BPE (see tokenizers.h). Unicode classes (letters, numbers, whitespace) come from ICU.
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "outeffhop/tokenizers.h"

namespace outeffhop::data {
namespace {

bool is_letter(UChar32 c) { return U_GET_GC_MASK(c) & U_GC_L_MASK; }
bool is_number(UChar32 c) { return U_GET_GC_MASK(c) & U_GC_N_MASK; }
bool is_space(UChar32 c) { return u_hasBinaryProperty(c, UCHAR_WHITE_SPACE); }
bool is_other(UChar32 c) { return !is_space(c) && !is_letter(c) && !is_number(c); }

std::string utf8(UChar32 c) {
  std::string out;
  icu::UnicodeString(c).toUTF8String(out);
  return out;
}

}  // namespace

Gpt2BpeTokenizer::Gpt2BpeTokenizer(const std::string& vocab_json_path, const std::string& merges_path) {
  std::ifstream vocab_in(vocab_json_path);
  if (!vocab_in) throw std::runtime_error(vocab_json_path + ": cannot read the BPE vocabulary");
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(vocab_json_path + ": not a JSON vocabulary (" + e.what() + ")");
  }
  if (!vocab.is_object() || vocab.empty()) throw std::runtime_error(vocab_json_path + ": expected {token: id, ...}");
  tokens_.resize(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<size_t>() >= vocab.size())
      throw std::runtime_error(vocab_json_path + ": id of '" + token + "' is not in [0, " +
                               std::to_string(vocab.size()) + ")");
    ids_[token] = id.get<int64_t>();
    tokens_[id.get<size_t>()] = token;
  }
  std::ifstream merges_in(merges_path);
  if (!merges_in) throw std::runtime_error(merges_path + ": cannot read the BPE merges");
  std::string line;
  for (int64_t line_number = 1; std::getline(merges_in, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_number == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size())
      throw std::runtime_error(merges_path + ":" + std::to_string(line_number) + ": expected 'a b', got '" + line +
                               "'");
    ranks_.emplace(std::make_pair(line.substr(0, space), line.substr(space + 1)), static_cast<int64_t>(ranks_.size()));
  }
  // GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the other bytes for U+0100 onwards.
  byte_symbol_.resize(256);
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_symbol_[b] = utf8(printable ? b : 256 + next++);
    symbol_byte_[byte_symbol_[b]] = static_cast<uint8_t>(b);
  }
}

std::vector<std::string> Gpt2BpeTokenizer::pre_tokenize(const std::string& utf8_text) const {
  // GPT-2's pattern, alternative by alternative at each position:
  //   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  const auto text = icu::UnicodeString::fromUTF8(utf8_text);
  std::vector<UChar32> c;
  for (int32_t i = 0; i < text.length(); i = text.moveIndex32(i, 1)) c.push_back(text.char32At(i));
  const size_t n = c.size();
  std::vector<std::string> pieces;
  auto emit = [&](size_t from, size_t to) {
    std::string piece;
    for (size_t k = from; k < to; ++k) piece += utf8(c[k]);
    pieces.push_back(std::move(piece));
  };
  auto run = [&](size_t from, bool (*in_class)(UChar32)) {
    while (from < n && in_class(c[from])) ++from;
    return from;
  };
  for (size_t i = 0; i < n;) {
    if (c[i] == '\'' && i + 1 < n) {  // contractions
      size_t len = 0;
      for (const char* suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
        const size_t l = std::char_traits<char>::length(suffix);
        bool match = i + l < n;
        for (size_t k = 0; match && k < l; ++k) match = c[i + 1 + k] == static_cast<UChar32>(suffix[k]);
        if (match) {
          len = l + 1;
          break;
        }
      }
      if (len > 0) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    const size_t start = (c[i] == ' ' && i + 1 < n && !is_space(c[i + 1])) ? i + 1 : i;  // the optional space
    bool matched = false;
    for (auto* in_class : {&is_letter, &is_number, &is_other}) {
      if (in_class(c[start])) {
        const size_t end = run(start, in_class);
        emit(i, end);
        i = end;
        matched = true;
        break;
      }
    }
    if (matched) continue;
    // Whitespace: the run, less its last character when a non-space follows (that one joins the next piece).
    const size_t end = run(i, &is_space);
    const size_t cut = end < n && end - i > 1 ? end - 1 : end;
    emit(i, cut);
    i = cut;
  }
  return pieces;
}

std::vector<std::string> Gpt2BpeTokenizer::bpe(const std::string& piece) const {
  std::vector<std::string> symbols;
  for (const unsigned char b : piece) symbols.push_back(byte_symbol_[b]);
  while (symbols.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    std::pair<std::string, std::string> best_pair;
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
      const auto it = ranks_.find({symbols[k], symbols[k + 1]});
      if (it != ranks_.end() && it->second < best) best = it->second, best_pair = it->first;
    }
    if (best == std::numeric_limits<int64_t>::max()) break;
    std::vector<std::string> merged;
    for (size_t k = 0; k < symbols.size(); ++k) {
      if (k + 1 < symbols.size() && symbols[k] == best_pair.first && symbols[k + 1] == best_pair.second) {
        merged.push_back(symbols[k] + symbols[k + 1]);
        ++k;
      } else {
        merged.push_back(symbols[k]);
      }
    }
    symbols = std::move(merged);
  }
  return symbols;
}

std::vector<int64_t> Gpt2BpeTokenizer::encode(const std::string& utf8_text) const {
  std::unordered_map<std::string, std::vector<int64_t>> cache;  // words repeat: merge each distinct piece once
  std::vector<int64_t> ids;
  for (const auto& piece : pre_tokenize(utf8_text)) {
    auto it = cache.find(piece);
    if (it == cache.end()) {
      std::vector<int64_t> piece_ids;
      for (const auto& symbol : bpe(piece)) {
        const auto id = ids_.find(symbol);
        if (id == ids_.end()) throw std::runtime_error("GPT-2 BPE: '" + symbol + "' is not in the vocabulary");
        piece_ids.push_back(id->second);
      }
      it = cache.emplace(piece, std::move(piece_ids)).first;
    }
    ids.insert(ids.end(), it->second.begin(), it->second.end());
  }
  return ids;
}

std::string Gpt2BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (const auto id : ids) {
    if (id < 0 || id >= size()) throw std::runtime_error("GPT-2 BPE: id " + std::to_string(id) + " out of range");
    const auto token = icu::UnicodeString::fromUTF8(tokens_[static_cast<size_t>(id)]);
    for (int32_t i = 0; i < token.length(); i = token.moveIndex32(i, 1)) {
      const auto it = symbol_byte_.find(utf8(token.char32At(i)));
      if (it == symbol_byte_.end())
        throw std::runtime_error("GPT-2 BPE: token " + std::to_string(id) + " is not bytes");
      bytes += static_cast<char>(it->second);
    }
  }
  return bytes;
}

}  // namespace outeffhop::data
