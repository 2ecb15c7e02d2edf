// sentencepiece BPE: trained on a small corpus, round trip, byte fallback, errors.
// GPT-2 byte-level BPE: hand-worked pre-tokenization and merges, round trip and known ids on the real vocabulary.
// WordPiece on hand-worked examples with a tiny vocabulary: greedy longest match with ## continuations, a word with an
// unknown piece becomes [UNK] as a whole, punctuation stands alone, accents and case are normalised away, CJK is
// spaced out, control characters dropped; bad vocabularies are clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "outeffhop/tokenizers.h"
#include "test_util.h"

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
  EXPECT_EQ(wp.tokenize("Héllo"), (V{"hello"}));                      // NFD, combining accent dropped, lower case
  EXPECT_EQ(wp.tokenize("abc"), (V{"ab", "##c"}));                    // longest match first: "ab", not "a" + "##b"
  EXPECT_EQ(wp.tokenize("abx hello"), (V{"[UNK]", "hello"}));         // "##x" missing: the whole word is [UNK]
  EXPECT_EQ(wp.tokenize("a中b"), (V{"a", "中", "[UNK]"}));            // CJK stands alone; "b" alone is not a word start
  EXPECT_EQ(wp.tokenize("hel\x01lo\thello"), (V{"hello", "hello"}));  // control dropped, tab separates
  EXPECT_EQ(wp.tokenize(std::string(101, 'a')), (V{"[UNK]"}));        // longer than 100 characters
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

TEST(Gpt2Bpe, PreTokenizationMergesAndRoundTrip) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto vocab = (dir / "outeffhop_bpe_vocab.json").string(), merges = (dir / "outeffhop_bpe_merges.txt").string();
  std::ofstream(vocab) << R"({"a": 0, "b": 1, "\u0120": 2, "ab": 3, "\u0120ab": 4})";
  std::ofstream(merges) << "#version: 0.2\na b\n\u0120 ab\n";
  const data::Gpt2BpeTokenizer bpe(vocab, merges);
  using V = std::vector<std::string>;
  // GPT-2's pattern (checked against Hugging Face's ByteLevel pre-tokenizer on these strings).
  EXPECT_EQ(bpe.pre_tokenize("I've  got 12 apples!"), (V{"I", "'ve", " ", " got", " 12", " apples", "!"}));
  EXPECT_EQ(bpe.pre_tokenize("a\n\nb  "), (V{"a", "\n", "\n", "b", "  "}));
  EXPECT_EQ(bpe.pre_tokenize("x 's 'S"), (V{"x", " '", "s", " '", "S"}));
  // "ab ab" -> "ab" + " ab": a b merge first (rank 0), then the space symbol U+0120 with ab (rank 1).
  EXPECT_EQ(bpe.encode("ab ab"), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(bpe.decode({3, 4, 0}), "ab aba");
  EXPECT_THROW(bpe.encode("c"), std::runtime_error);  // a byte with no vocabulary entry
  EXPECT_THROW(bpe.decode({5}), std::runtime_error);
  std::ofstream(merges) << "#version: 0.2\nnospace\n";
  EXPECT_THROW(data::Gpt2BpeTokenizer(vocab, merges), std::runtime_error);
  std::ofstream(vocab) << "[1, 2]";
  EXPECT_THROW(data::Gpt2BpeTokenizer(vocab, merges), std::runtime_error);
}

TEST(Gpt2Bpe, RoundTripOnTheRealVocabulary) {
  const auto dir = testing::shared_data_dir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared/data";
  const data::Gpt2BpeTokenizer bpe(dir + "/tokenizers/gpt2-vocab.json", dir + "/tokenizers/gpt2-merges.txt");
  EXPECT_EQ(bpe.size(), 50257);
  const std::string text = "Outlier-efficient   Hopfield layers\n\tdon't grow outliers: 3.14159, Ünïcödé 中文 😀 ";
  EXPECT_EQ(bpe.decode(bpe.encode(text)), text);
  EXPECT_EQ(bpe.encode("Hello world"), (std::vector<int64_t>{15496, 995}));  // GPT-2's well-known ids
}

TEST(SentencePiece, TrainEncodeDecodeAndErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("outeffhop_sp_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto text = (dir / "corpus.txt").string(), model = (dir / "bpe.model").string();
  {
    std::ofstream out(text);
    const char* words[] = {"outlier", "efficient", "hopfield", "layers", "attention", "softmax", "quantization",
                           "heads", "abstain", "memory", "retrieval", "energy", "tokens", "model", "the", "a"};
    for (int line = 0; line < 2000; ++line) {
      for (int w = 0; w < 12; ++w) out << (w ? " " : "") << words[(line * 7 + w * 3 + line / 5) % 16];
      out << ".\n";
    }
  }
  data::SentencePieceBpe::train(text, model, 360);
  const data::SentencePieceBpe sp(model);
  EXPECT_EQ(sp.size(), 360);
  const std::string sentence = "the outlier efficient hopfield layers abstain.";
  const auto ids = sp.encode(sentence);
  EXPECT_LT(ids.size(), sentence.size() * 3 / 4);  // merges learned: fewer pieces than characters
  EXPECT_EQ(sp.decode(ids), sentence);
  EXPECT_EQ(sp.decode(sp.encode("zebra q!")), "zebra q!");  // unseen characters: byte fallback
  EXPECT_GE(sp.bos_id(), 0);
  EXPECT_THROW(sp.decode({-1}), std::runtime_error);
  EXPECT_THROW(data::SentencePieceBpe{text}, std::runtime_error);  // not a model
  EXPECT_THROW(data::SentencePieceBpe::train(text, (dir / "x.bin").string(), 320), std::runtime_error);
  // The fingerprint identifies the vocabulary, not the file: retrained elsewhere it is equal, though the file (which
  // records its paths) is not; another vocabulary size changes it.
  const auto elsewhere = (dir / "elsewhere.model").string(), smaller = (dir / "smaller.model").string();
  data::SentencePieceBpe::train(text, elsewhere, 360);
  data::SentencePieceBpe::train(text, smaller, 340);
  EXPECT_EQ(sp.fingerprint().size(), 16u);
  EXPECT_EQ(data::SentencePieceBpe(elsewhere).fingerprint(), sp.fingerprint());
  EXPECT_NE(data::SentencePieceBpe(smaller).fingerprint(), sp.fingerprint());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace outeffhop
