// A sentencepiece BPE model (see tokenizers.h): training and encoding through libsentencepiece.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <stdexcept>

#include "outeffhop/tokenizers.h"

namespace outeffhop::data {

void SentencePieceBpe::train(const std::string& text_path, const std::string& model_path, int64_t vocab_size) {
  const std::string suffix = ".model";
  if (model_path.size() <= suffix.size() || !model_path.ends_with(suffix))
    throw std::runtime_error("sentencepiece: the model path must end in .model, got " + model_path);
  const auto prefix = model_path.substr(0, model_path.size() - suffix.size());
  // Byte fallback keeps every input encodable; the input sample bounds the training time on large corpora.
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + text_path + " --model_prefix=" + prefix + " --vocab_size=" + std::to_string(vocab_size) +
      " --model_type=bpe --character_coverage=1.0 --byte_fallback=true --input_sentence_size=1000000"
      " --shuffle_input_sentence=true --minloglevel=2");
  if (!status.ok()) throw std::runtime_error("sentencepiece: training on " + text_path + " failed: " + status.ToString());
}

SentencePieceBpe::SentencePieceBpe(const std::string& model_path)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = processor_->Load(model_path);
  if (!status.ok()) throw std::runtime_error(model_path + ": not a sentencepiece model (" + status.ToString() + ")");
}

SentencePieceBpe::~SentencePieceBpe() = default;

std::vector<int64_t> SentencePieceBpe::encode(const std::string& utf8_text) const {
  std::vector<int> ids;
  const auto status = processor_->Encode(utf8_text, &ids);
  if (!status.ok()) throw std::runtime_error("sentencepiece: encoding failed: " + status.ToString());
  return {ids.begin(), ids.end()};
}

std::string SentencePieceBpe::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> narrow;
  for (const auto id : ids) {
    if (id < 0 || id >= size()) throw std::runtime_error("sentencepiece: id " + std::to_string(id) + " out of range");
    narrow.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = processor_->Decode(narrow, &text);
  if (!status.ok()) throw std::runtime_error("sentencepiece: decoding failed: " + status.ToString());
  return text;
}

int64_t SentencePieceBpe::size() const { return processor_->GetPieceSize(); }
int64_t SentencePieceBpe::bos_id() const { return processor_->bos_id(); }

std::string SentencePieceBpe::fingerprint() const {
  uint64_t hash = 14695981039346656037ull;
  const auto add = [&hash](const void* data, size_t size) {
    for (size_t i = 0; i < size; ++i) hash = (hash ^ static_cast<const unsigned char*>(data)[i]) * 1099511628211ull;
  };
  for (int id = 0; id < processor_->GetPieceSize(); ++id) {
    const auto& piece = processor_->IdToPiece(id);
    const float score = processor_->GetScore(id);
    add(piece.data(), piece.size() + 1);  // with the terminating NUL, so "ab"+"c" differs from "a"+"bc"
    add(&score, sizeof score);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

}  // namespace outeffhop::data
