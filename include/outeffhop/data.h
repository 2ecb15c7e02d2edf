// Image datasets from disk: IDX (MNIST, Fashion-MNIST; gzip or raw) and CIFAR-10 binary batches, plus the
// dataset registry that finds them (Fashion-MNIST from Debian by default, the rest under --data-dir).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace outeffhop::data {

// An IDX file: magic 0x00 0x00 <type> <rank>, then rank big-endian uint32 sizes, then the values.
// Only unsigned-byte data (type 0x08, what MNIST-style files hold) is accepted. Reads gzip or raw files.
// Throws std::runtime_error naming the file and what was wrong (bad magic, sizes, truncation, trailing bytes).
at::Tensor read_idx(const std::string& path);  // uint8 tensor of the file's shape

// CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32 x 32).
struct LabeledImages {
  at::Tensor images;  // N x C x H x W, uint8
  at::Tensor labels;  // N, int64
};
LabeledImages read_cifar10_binary(const std::string& path);

enum class Split { kTrain, kTest };

// A named image dataset: "fashion-mnist" (default: Debian's dataset-fashion-mnist, or data_dir/fashion-mnist),
// "mnist" (data_dir/mnist; only the test split ships in ../shared/data) or "cifar10" (data_dir/cifar10: test_batch.bin,
// and train_subset_10k.bin for the train split).
LabeledImages load_images(const std::string& name, Split split, const std::string& data_dir = "");

// Where the files of `name` would be read from, and whether they are there (for `outeffhop info`).
struct DatasetLocation {
  std::string name;
  std::vector<std::string> files;
  bool found = false;
};
std::vector<DatasetLocation> locate_datasets(const std::string& data_dir);

// The bytes of one entry of a zip archive (stored or deflate). Throws naming the archive and entry.
std::vector<uint8_t> read_zip_entry(const std::string& zip_path, const std::string& entry);

// A MATLAB v5 array: numeric (as doubles, column-major), char (text, column-major), cell, struct or old-style object.
struct MatValue {
  uint8_t mat_class = 0;  // MATLAB class: 1 cell, 2 struct, 3 object, 4 char, 6 double, ...; 0 for an empty array
  std::vector<int64_t> dims;
  std::string name, class_name;
  std::vector<double> numbers;
  std::string text;
  std::vector<MatValue> cells;
  std::map<std::string, std::vector<MatValue>> fields;  // one value per struct element
  const MatValue& field(const std::string& name) const;  // the first element's field; throws if missing
};
// The top-level variables of a MAT v5 file (little-endian; compressed elements inflated). `what` names the source.
std::vector<MatValue> read_mat5(const std::vector<uint8_t>& bytes, const std::string& what);

// A multiple-instance benchmark of Andrews et al. (fox, elephant, tiger) from data_dir/mil/fox_elephant_tiger_mat.zip
// (PRTools dataset objects): instances N x 230, the bag (0-based) and whether the instance is labelled positive.
struct MilBenchmark {
  at::Tensor instances;  // N x 230 float
  at::Tensor bag;        // N int64
  at::Tensor positive;   // N bool
};
MilBenchmark read_mil_benchmark(const std::string& data_dir, const std::string& name);

// Text corpora. A Project Gutenberg e-text reduced to its body: the lines between "*** START OF" and "*** END OF"
// (the whole text when the markers are missing), without a UTF-8 BOM or carriage returns.
std::string strip_gutenberg(const std::string& text);
std::string read_text_file(const std::string& path);  // the file's bytes; throws when unreadable
// Every *.txt file in `dir` (sorted by name), each stripped of its Gutenberg header and footer, joined by blank lines.
std::string read_books(const std::string& dir);
// Sentences of a text: a sentence ends at '.', '!' or '?' (with any closing quotes or brackets) followed by whitespace,
// or at a blank line; whitespace inside is collapsed to single spaces. (A simple rule: "Mr. Smith" splits.)
std::vector<std::string> split_sentences(const std::string& text);
// A held-out split of a sequence of sentences in blocks of `block`: block k (sentences k*block ...) is held out when
// floor((k + 1) f) > floor(k f), a fraction f of the blocks spread evenly. f = 0: none.
bool in_held_out_block(size_t index, double fraction, size_t block = 100);
// The same split of a 1-D token stream into chunks of `chunk` tokens (the last one may be shorter): {the training
// chunks joined, the held-out chunks joined}, each in its original order; the held-out part is empty when f = 0.
std::pair<at::Tensor, at::Tensor> split_held_out_chunks(const at::Tensor& tokens, int64_t chunk, double fraction);
// Byte-level tokens: int64 ids 0..255, one per byte.
at::Tensor byte_tokens(const std::string& text);

}  // namespace outeffhop::data
