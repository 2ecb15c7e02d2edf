// Text corpora: Gutenberg stripping, reading a directory of books, byte-level tokens (see data.h).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "outeffhop/data.h"

namespace outeffhop::data {

std::string strip_gutenberg(const std::string& text) {
  std::string t = text;
  if (t.rfind("\xEF\xBB\xBF", 0) == 0) t.erase(0, 3);
  t.erase(std::remove(t.begin(), t.end(), '\r'), t.end());
  // The body starts on the line after the START marker and ends before the line holding the END marker.
  const auto start = t.find("*** START OF");
  if (start != std::string::npos) {
    const auto line_end = t.find('\n', start);
    t.erase(0, line_end == std::string::npos ? t.size() : line_end + 1);
  }
  const auto end = t.find("*** END OF");
  if (end != std::string::npos) {
    const auto line_start = t.rfind('\n', end);
    t.erase(line_start == std::string::npos ? 0 : line_start + 1);
  }
  return t;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, "cannot read ", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string read_books(const std::string& dir) {
  namespace fs = std::filesystem;
  TORCH_CHECK(fs::is_directory(dir), "books: ", dir, " is not a directory");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".txt") files.push_back(entry.path());
  TORCH_CHECK(!files.empty(), "books: no .txt files in ", dir);
  std::sort(files.begin(), files.end());
  std::string all;
  for (const auto& f : files) {
    if (!all.empty()) all += "\n\n";
    all += strip_gutenberg(read_text_file(f.string()));
  }
  return all;
}

at::Tensor byte_tokens(const std::string& text) {
  auto bytes = at::empty({static_cast<int64_t>(text.size())}, at::kByte);
  std::copy(text.begin(), text.end(), reinterpret_cast<char*>(bytes.data_ptr<uint8_t>()));
  return bytes.to(at::kLong);
}

std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> sentences;
  std::string current;
  auto flush = [&] {
    while (!current.empty() && current.back() == ' ') current.pop_back();
    if (!current.empty()) sentences.push_back(current);
    current.clear();
  };
  auto space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (space(c)) {
      // A blank line ends a paragraph, and so a sentence.
      if (c == '\n' && i + 1 < text.size() &&
          (text[i + 1] == '\n' || (text[i + 1] == '\r' && i + 2 < text.size() && text[i + 2] == '\n')))
        flush();
      if (!current.empty() && current.back() != ' ') current += ' ';
      continue;
    }
    current += c;
    if (c == '.' || c == '!' || c == '?') {
      // Closing quotes and brackets belong to the sentence; it ends when whitespace follows.
      size_t j = i + 1;
      while (j < text.size() && (text[j] == '"' || text[j] == '\'' || text[j] == ')' || text[j] == ']'))
        current += text[j++];
      i = j - 1;
      if (j >= text.size() || space(text[j])) flush();
    }
  }
  flush();
  return sentences;
}

bool in_held_out_block(size_t index, double fraction, size_t block) {
  TORCH_CHECK(block > 0 && fraction >= 0 && fraction <= 1, "held-out split: needs block > 0 and a fraction in [0, 1]");
  const auto k = static_cast<double>(index / block);
  return std::floor((k + 1) * fraction) > std::floor(k * fraction);
}

std::pair<at::Tensor, at::Tensor> split_held_out_chunks(const at::Tensor& tokens, int64_t chunk, double fraction) {
  TORCH_CHECK(tokens.dim() == 1 && chunk > 0, "held-out split: needs a 1-D token stream and chunk > 0");
  if (fraction == 0) return {tokens, tokens.slice(0, 0, 0)};  // the whole stream trains: no copy
  std::vector<at::Tensor> train, held;
  for (int64_t c = 0; c * chunk < tokens.size(0); ++c)
    (in_held_out_block(static_cast<size_t>(c), fraction, 1) ? held : train)
        .push_back(tokens.slice(0, c * chunk, (c + 1) * chunk));
  auto join = [&](const std::vector<at::Tensor>& parts) {
    return parts.empty() ? tokens.slice(0, 0, 0) : at::cat(parts);
  };
  return {join(train), join(held)};
}

}  // namespace outeffhop::data
