// WordPiece on hand-worked examples with a tiny vocabulary: greedy longest match with ## continuations, a word with an
// unknown piece becomes [UNK] as a whole, punctuation stands alone, accents and case are normalised away, CJK is
// spaced out, control characters dropped; bad vocabularies are clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "outeffhop/tokenizers.h"

namespace outeffhop {
namespace {

std::string write_vocab(const std::string& name, const std::vector<std::string>& tokens) {
  const auto path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream out(path);
  for (const auto& t : tokens) out << t << "\n";
  return path;
}

TEST(WordPiece, HandWorkedExamples) {
  const auto path = write_vocab("outeffhop_wp_vocab.txt", {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff",
                                                           "##able", "hello", "!", ",", "a", "##b", "ab", "中", "##c"});
  const data::WordPieceTokenizer wp(path);
  using V = std::vector<std::string>;
  EXPECT_EQ(wp.tokenize("UnAffable, hello!"), (V{"un", "##aff", "##able", ",", "hello", "!"}));
  EXPECT_EQ(wp.tokenize("Héllo"), (V{"hello"}));                    // NFD, combining accent dropped, lower case
  EXPECT_EQ(wp.tokenize("abc"), (V{"ab", "##c"}));                   // longest match first: "ab", not "a" + "##b"
  EXPECT_EQ(wp.tokenize("abx hello"), (V{"[UNK]", "hello"}));        // "##x" missing: the whole word is [UNK]
  EXPECT_EQ(wp.tokenize("a中b"), (V{"a", "中", "[UNK]"}));             // CJK stands alone; "b" alone is not a word start
  EXPECT_EQ(wp.tokenize("hel\x01lo\thello"), (V{"hello", "hello"}));  // control dropped, tab separates
  EXPECT_EQ(wp.tokenize(std::string(101, 'a')), (V{"[UNK]"}));       // longer than 100 characters
  EXPECT_TRUE(wp.tokenize("  \n ").empty());
  EXPECT_EQ(wp.encode("unaffable!"), (std::vector<int64_t>{5, 6, 7, 9}));
  EXPECT_EQ(wp.id("[MASK]"), 4);
  EXPECT_EQ(wp.token(8), "hello");
  EXPECT_THROW(wp.id("nope"), std::runtime_error);
  EXPECT_THROW(wp.token(99), std::runtime_error);

  const data::WordPieceTokenizer cased(path, /*lowercase=*/false);
  EXPECT_EQ(cased.tokenize("Hello hello"), (V{"[UNK]", "hello"}));

  EXPECT_THROW(data::WordPieceTokenizer("/nonexistent/vocab.txt"), std::runtime_error);
  EXPECT_THROW(data::WordPieceTokenizer(write_vocab("outeffhop_wp_nounk.txt", {"a", "b"})), std::runtime_error);
}

}  // namespace
}  // namespace outeffhop
