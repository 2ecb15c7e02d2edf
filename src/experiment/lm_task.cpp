// The "lm" task: an OPT-style decoder trained on the books (text/books, Gutenberg headers stripped) and evaluated on
// WikiText-2 valid (or data.eval_text, any text file), on bytes, GPT-2 BPE tokens (tokenizers/gpt2-*) or a
// sentencepiece BPE trained on the books (cached with the runs), each sequence optionally starting with a BOS token
// as OPT prepends </s>. A fraction of the books (data.held_out, in chunks of 100 windows spread evenly over the books)
// is kept out of training and evaluated too: an in-domain perplexity beside WikiText-2's.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <tuple>

#include "opt_task.h"
#include "outeffhop/data.h"
#include "outeffhop/models/opt.h"
#include "outeffhop/tokenizers.h"

namespace outeffhop::experiment {
namespace {

constexpr int64_t kByteBos = 256;     // bytes: the beginning-of-sequence token after the 256 byte values
constexpr int64_t kGpt2Bos = 50256;   // GPT-2 BPE: <|endoftext|>, which GPT-2 puts between documents
constexpr const char* kHeldOutName = "books";
constexpr int64_t kHeldOutChunkWindows = 100;

// A sentencepiece BPE of vocab_size pieces trained on the books, cached as cache_dir/sentencepiece-bpe-N.model.
std::string trained_sentencepiece(const std::string& books, int64_t vocab_size, const std::string& cache_dir) {
  const auto dir = cache_dir.empty() ? (std::filesystem::temp_directory_path() / "outeffhop").string() : cache_dir;
  std::filesystem::create_directories(dir);
  const auto model = std::filesystem::absolute(dir + "/sentencepiece-bpe-" + std::to_string(vocab_size) + ".model");
  if (std::filesystem::exists(model)) return model.string();
  // Trained under this process's own names, then renamed into place: processes that share a runs dir never read a
  // half-written model or delete each other's input.
  const auto mine = dir + "/sentencepiece-" + std::to_string(::getpid());
  std::ofstream(mine + ".txt") << books;
  std::fprintf(stderr, "[lm] training a sentencepiece BPE of %lld pieces on the books into %s\n",
               static_cast<long long>(vocab_size), model.c_str());
  data::SentencePieceBpe::train(mine + ".txt", mine + ".model", vocab_size);
  std::filesystem::rename(mine + ".model", model);
  for (const auto* leftover : {".txt", ".vocab"}) std::filesystem::remove(mine + leftover);
  return model.string();
}

// A token for a note: a printable byte as itself, another byte in hex, a subword token by its id.
std::string token_label(int64_t id, bool bytes) {
  char out[16];
  if (bytes && id > 32 && id < 127) std::snprintf(out, sizeof out, "'%c'", static_cast<char>(id));
  else if (bytes && id < 256) std::snprintf(out, sizeof out, "0x%02llx", static_cast<long long>(id));
  else std::snprintf(out, sizeof out, "#%lld", static_cast<long long>(id));
  return out;
}

// Says so when over 0.1% of the evaluation text is tokens the training text holds fewer than 1 in 100,000 of
// (WikiText-2's "<unk>" markers: '<' and '>' occur once in the books). The model has rarely seen them as inputs, and
// W8A8's ranges, calibrated on training batches, need not cover them: a cost of the text, not of the attention.
void note_rare_evaluation_tokens(const at::Tensor& train, const at::Tensor& eval, const std::string& eval_name,
                                 bool bytes) {
  const int64_t vocab = std::max(train.max().item<int64_t>(), eval.max().item<int64_t>()) + 1;
  const auto train_counts = at::bincount(train, {}, vocab);
  const auto rare = train_counts.to(at::kDouble) < 1e-5 * static_cast<double>(train.size(0));
  const auto rare_eval_counts = at::bincount(eval, {}, vocab) * rare;
  const int64_t rare_total = rare_eval_counts.sum().item<int64_t>();
  const double share = static_cast<double>(rare_total) / static_cast<double>(eval.size(0));
  if (share < 1e-3) return;
  const auto [counts, ids] = rare_eval_counts.topk(std::min<int64_t>(4, (rare_eval_counts > 0).sum().item<int64_t>()));
  std::string most;
  for (int64_t i = 0; i < ids.size(0); ++i) {
    const int64_t id = ids[i].item<int64_t>();
    most += (i ? ", " : "") + token_label(id, bytes) + " " + std::to_string(counts[i].item<int64_t>()) +
            (i ? " (" : " times (") + std::to_string(train_counts[id].item<int64_t>()) + (i ? ")" : " in the books)");
  }
  std::fprintf(stderr,
               "[lm] note: %.1f%% of %s's tokens are rare in the training books (under 1 in 100,000; most often %s): "
               "inputs the model has rarely seen, and W8A8 ranges calibrated on training batches need not cover them\n",
               100 * share, eval_name.c_str(), most.c_str());
}

class LmTask : public OptTask {
 public:
  LmTask(ConfigReader& config, const std::string& data_dir, const std::string& cache_dir) {
    auto data = config.child("data");
    bos_ = data.get("bos", true);
    seq_ = data.get<int64_t>("seq", 128);
    tokenizer_ = data.get<std::string>("tokenizer", "bytes");
    const auto sp_vocab = data.get<int64_t>("sentencepiece_vocab", 8000);
    const auto sp_given = data.get<std::string>("sentencepiece_model", "");
    const auto sp_expected = data.get<std::string>("sentencepiece_fingerprint", "");
    const auto held_out = read_held_out(data);
    // Another evaluation text than WikiText-2 valid: a path relative to the data dir, or absolute.
    const auto eval_text = data.get<std::string>("eval_text", "");
    data.finish();
    if (tokenizer_ != "bytes" && tokenizer_ != "gpt2" && tokenizer_ != "sentencepiece")
      data.fail("tokenizer", "must be bytes, gpt2 or sentencepiece");
    const bool gpt2 = tokenizer_ == "gpt2";
    bos_id_ = gpt2 ? kGpt2Bos : kByteBos;
    const auto books = data_dir + "/text/books";
    const auto eval_path = eval_text.empty()                               ? data_dir + "/text/wikitext2_valid.txt"
                           : std::filesystem::path(eval_text).is_absolute() ? eval_text
                                                                            : data_dir + "/" + eval_text;
    eval_name_ = eval_text.empty() ? "WikiText-2 valid" : std::filesystem::path(eval_text).filename().string();
    const auto book_text = data::read_books(books);
    std::shared_ptr<data::SentencePieceBpe> sp;
    std::string sp_fingerprint;
    if (tokenizer_ == "sentencepiece") {  // trained on the books once, cached next to the runs
      const auto sp_model = sp_given.empty() ? trained_sentencepiece(book_text, sp_vocab, cache_dir) : sp_given;
      sp = std::make_shared<data::SentencePieceBpe>(sp_model);
      sp_fingerprint = sp->fingerprint();
      if (!sp_expected.empty() && sp_expected != sp_fingerprint)
        data.fail("sentencepiece_fingerprint", "is " + sp_expected + " but the model at " + sp_model + " has " +
                                                   sp_fingerprint + ": not the tokenizer this config was made with");
      bos_id_ = sp->bos_id();
    }
    const auto model = read_model_options(config.child("model"), transformer_model_defaults(128, 512));
    if (seq_ < 2) data.fail("seq", "must be >= 2");
    nlohmann::json train_json, eval_json;
    read_train_options(config.child("train"), train_, batch_, train_json);
    read_evaluation_options(config.child("eval"), evaluation_, eval_json);
    const int64_t vocab_size = gpt2 ? 50257 : sp ? sp->size() : 256 + (bos_ ? 1 : 0);
    nlohmann::json data_json = {{"bos", bos_}, {"seq", seq_}, {"tokenizer", tokenizer_}};
    record_held_out(held_out, data_json);
    if (!eval_text.empty()) data_json["eval_text"] = eval_text;  // absent: WikiText-2, as in configs made before it
    if (sp) {  // the model by content; its path only when the config named one (a cached one's path varies)
      data_json["sentencepiece_vocab"] = sp_vocab, data_json["sentencepiece_fingerprint"] = sp_fingerprint;
      if (!sp_given.empty()) data_json["sentencepiece_model"] = sp_given;
    }
    resolved_ = {{"task", "lm"},
                 {"data", data_json},
                 {"model", model},
                 {"train", train_json},
                 {"eval", eval_json},
                 {"derived", {{"vocab_size", vocab_size}, {"max_positions", seq_}}}};

    std::fprintf(stderr, "[lm] reading %s and %s (%s tokens)\n", books.c_str(), eval_path.c_str(), tokenizer_.c_str());
    std::function<at::Tensor(const std::string&)> tokens = data::byte_tokens;
    if (gpt2) {
      auto bpe = std::make_shared<data::Gpt2BpeTokenizer>(data_dir + "/tokenizers/gpt2-vocab.json",
                                                          data_dir + "/tokenizers/gpt2-merges.txt");
      tokens = [bpe](const std::string& text) { return at::tensor(bpe->encode(text), at::kLong); };
    } else if (sp) {
      tokens = [sp](const std::string& text) { return at::tensor(sp->encode(text), at::kLong); };
    }
    split_books(tokens(book_text), held_out);
    // WikiText-2 as it is; another text like the books (BOM, CRLF and any Gutenberg header and footer removed).
    const auto eval_bytes = data::read_text_file(eval_path);
    const auto eval_tokens = tokens(eval_text.empty() ? eval_bytes : data::strip_gutenberg(eval_bytes));
    eval_ = window_batches(eval_tokens, eval_name_);
    note_rare_evaluation_tokens(train_tokens_, eval_tokens, eval_name_, tokenizer_ == "bytes");
    const std::string held_note =
        held_out > 0 ? "; " + std::to_string(extra_[kHeldOutName].size()) + " evaluation batches on the held-out books"
                     : " (no held-out books: data.held_out is 0)";
    std::fprintf(stderr, "[lm] %lld training tokens%s\n", static_cast<long long>(train_tokens_.size(0)),
                 held_note.c_str());
  }

  std::string label() const override { return "opt-books"; }
  std::string description() const override {
    const auto& m = resolved_["model"];
    const std::string kind = tokenizer_ == "gpt2" ? "GPT-2-BPE" : tokenizer_ == "sentencepiece" ? "sentencepiece-BPE"
                                                                                                  : "byte-level";
    return kind + " OPT, " + m["layers"].dump() + " layers, d = " + m["d_model"].dump() + ", seq " +
           std::to_string(seq_) + (bos_ ? " (BOS)" : "") + ", " + std::to_string(train_.steps) +
           " steps; books -> " + eval_name_;
  }
  std::string metric_name() const override { return tokenizer_ == "bytes" ? "ppl/byte" : "ppl/token"; }
  double metric(double mean_loss, double) const override { return std::exp(mean_loss); }
  bool lower_is_better() const override { return true; }

  TaskModel build(const std::string& variant) const override { return build_model(resolved_, variant); }

  Batch train_batch(at::Generator& gen) const override { return split(random_windows(gen)); }
  const std::vector<Batch>& eval_batches() const override { return eval_; }
  const std::map<std::string, std::vector<Batch>>& extra_evaluations() const override { return extra_; }

 private:
  // Rows of seq + 1 tokens (seq model positions plus the last target): bytes, or a BOS token and seq bytes.
  at::Tensor with_bos(const at::Tensor& rows) const {
    return bos_ ? at::cat({at::full({rows.size(0), 1}, bos_id_, rows.options()), rows}, 1) : rows;
  }
  int64_t window() const { return seq_ + 1 - (bos_ ? 1 : 0); }
  static Batch split(const at::Tensor& rows) { return {rows.slice(1, 0, -1), rows.slice(1, 1).reshape({-1})}; }

  at::Tensor random_windows(at::Generator& gen) const {
    const auto starts = at::randint(train_tokens_.size(0) - window(), {batch_}, gen);
    std::vector<at::Tensor> rows;
    for (int64_t i = 0; i < batch_; ++i) {
      const int64_t s = starts[i].item<int64_t>();
      rows.push_back(train_tokens_.slice(0, s, s + window()));
    }
    return with_bos(at::stack(rows));
  }

  // Whole chunks of kHeldOutChunkWindows windows, a held_out fraction of them spread evenly, never trained on: every
  // book contributes, and each held-out window lies inside one chunk. The tokenizer (a trained sentencepiece one
  // included) has seen all the books; the model has not.
  void split_books(const at::Tensor& tokens, double held_out) {
    const int64_t chunk = kHeldOutChunkWindows * window();
    at::Tensor held;
    std::tie(train_tokens_, held) = data::split_held_out_chunks(tokens, chunk, held_out);
    TORCH_CHECK(train_tokens_.size(0) > window(), "lm: the books give fewer than one training window of ", window(),
                " tokens");
    if (held_out > 0) {
      TORCH_CHECK(held.size(0) > 0, "lm: data.held_out = ", held_out, " holds out no chunk of ", chunk,
                  " tokens of the books; raise it");
      extra_[kHeldOutName] = window_batches(held, "the held-out books", /*spread=*/true);
    }
  }

  // Up to eval.batches batches of whole windows: the first ones, or (spread) windows at an even stride over all.
  std::vector<Batch> window_batches(const at::Tensor& tokens, const std::string& what, bool spread = false) const {
    const int64_t available = tokens.size(0) / window();
    TORCH_CHECK(available >= batch_, "lm: ", what, " holds ", available, " windows of ", window(),
                " tokens, fewer than one batch of ", batch_);
    const int64_t count = std::min(evaluation_.batches, available / batch_);
    const int64_t stride = spread ? available / (count * batch_) : 1;
    const auto windows = tokens.slice(0, 0, available * window()).view({available, window()});
    std::vector<Batch> out;
    for (int64_t b = 0; b < count; ++b)
      out.push_back(split(with_bos(windows.slice(0, b * batch_ * stride, (b + 1) * batch_ * stride, stride))));
    return out;
  }

  bool bos_ = true;
  std::string tokenizer_ = "bytes";
  std::string eval_name_;  // "WikiText-2 valid", or data.eval_text's file name
  int64_t bos_id_ = kByteBos;
  int64_t seq_ = 128, batch_ = 16;
  at::Tensor train_tokens_;
  std::vector<Batch> eval_;
  std::map<std::string, std::vector<Batch>> extra_;  // "books": the held-out chunks
};

}  // namespace

TaskModel build_lm_model(const nlohmann::json& task, const std::string& variant) {
  models::OptConfig c;
  const auto& m = task.at("model");
  c.d_model = m.at("d_model"), c.num_layers = m.at("layers"), c.num_heads = m.at("heads"), c.d_ff = m.at("d_ff");
  c.dropout = m.at("dropout"), c.attention_dropout = m.at("attention_dropout"), c.init_std = m.at("init_std");
  c.vocab_size = task.at("derived").at("vocab_size"), c.max_positions = task.at("derived").at("max_positions");
  c.variant = nn::parse_attention_variant(variant);
  models::OptForCausalLM model(c);
  return {model.ptr(), [model](const at::Tensor& ids) mutable { return model->forward(ids); },
          [model](nn::ActivationPointsPtr p) mutable { model->set_activation_points(std::move(p)); }};
}

std::unique_ptr<Task> make_lm_task(ConfigReader& config, const std::string& data_dir, const std::string& cache_dir) {
  return std::make_unique<LmTask>(config, data_dir, cache_dir);
}

}  // namespace outeffhop::experiment
