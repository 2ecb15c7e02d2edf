// The "bert" task: BERT masked-language modelling on sentence pairs [CLS] A [SEP] B [SEP] from the books (A and B
// consecutive runs of sentences), WordPiece-tokenized with BERT's uncased vocabulary, 15% of the real tokens masked
// (80% [MASK], 10% a random token, 10% unchanged); evaluated on pairs from WikiText-2 valid with a fixed masking. The
// metric is the perplexity over the masked tokens, whose logits alone the model computes. A fraction of the books'
// sentences (data.held_out, in blocks of 100 spread evenly over the books) is kept out of training and evaluated too.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>

#include "outeffhop/analysis/int8_linear.h"
#include "outeffhop/data.h"
#include "outeffhop/experiment/task.h"
#include "outeffhop/models/bert.h"
#include "outeffhop/tokenizers.h"

namespace outeffhop::experiment {
namespace {

constexpr const char* kHeldOutName = "books";

class BertTask : public Task {
 public:
  BertTask(ConfigReader& config, const std::string& data_dir) {
    auto data = config.child("data");
    seq_ = data.get<int64_t>("seq", 128);
    mask_rate_ = data.get("mask_rate", 0.15);
    const auto vocab = data.get<std::string>("vocab", "tokenizers/bert-base-uncased-vocab.txt");
    const auto held_out = read_held_out(data);
    data.finish();
    if (seq_ < 8 || mask_rate_ <= 0 || mask_rate_ >= 1) data.fail("", "needs seq >= 8 and mask_rate in (0, 1)");
    const auto model = read_model_options(config.child("model"), transformer_model_defaults(128, 512));
    nlohmann::json train_json, eval_json;
    read_train_options(config.child("train"), train_, batch_, train_json);
    read_evaluation_options(config.child("eval"), evaluation_, eval_json);

    const auto vocab_path = vocab.empty() || vocab.front() == '/' ? vocab : data_dir + "/" + vocab;
    tokenizer_ = std::make_unique<data::WordPieceTokenizer>(vocab_path);
    pad_ = tokenizer_->id("[PAD]"), cls_ = tokenizer_->id("[CLS]"), sep_ = tokenizer_->id("[SEP]");
    mask_ = tokenizer_->id("[MASK]");
    nlohmann::json data_json = {{"seq", seq_}, {"mask_rate", mask_rate_}, {"vocab", vocab}};
    record_held_out(held_out, data_json);
    resolved_ = {{"task", "bert"},    {"data", data_json},
                 {"model", model},    {"train", train_json},
                 {"eval", eval_json}, {"derived", {{"vocab_size", tokenizer_->size()}, {"max_positions", seq_}}}};
    const auto books = data_dir + "/text/books", valid = data_dir + "/text/wikitext2_valid.txt";
    std::fprintf(stderr, "[bert] tokenizing %s and %s with %s\n", books.c_str(), valid.c_str(), vocab_path.c_str());
    auto book_sentences = tokenize(data::read_books(books));
    std::vector<std::vector<int64_t>> held_out_sentences;
    // Blocks of 100 sentences spread evenly: every book contributes, and a pair rarely straddles a gap.
    for (size_t i = 0; i < book_sentences.size(); ++i)
      (data::in_held_out_block(i, held_out) ? held_out_sentences : train_sentences_)
          .push_back(std::move(book_sentences[i]));
    eval_ = fixed_batches(tokenize(data::read_text_file(valid)), 987654321);
    TORCH_CHECK(!eval_.empty(), "bert: WikiText-2 valid gives fewer than one batch of ", batch_, " pairs");
    if (held_out > 0) {
      auto& held = extra_[kHeldOutName] = fixed_batches(held_out_sentences, 987654322);
      TORCH_CHECK(!held.empty(), "bert: the held-out books (", held_out_sentences.size(),
                  " sentences) give fewer than one batch of ", batch_, " pairs; raise data.held_out");
    }
    const std::string held_note =
        held_out > 0 ? ", " + std::to_string(extra_[kHeldOutName].size()) + " on the held-out books (" +
                           std::to_string(held_out_sentences.size()) + " sentences)"
                     : " (no held-out books: data.held_out is 0)";
    std::fprintf(stderr, "[bert] %zu training sentences; evaluation batches of %lld pairs: %zu on WikiText-2 valid%s\n",
                 train_sentences_.size(), static_cast<long long>(batch_), eval_.size(), held_note.c_str());
  }

  std::string label() const override { return "bert-books"; }
  std::string description() const override {
    const auto& m = resolved_["model"];
    return "BERT MLM, " + m["layers"].dump() + " layers, d = " + m["d_model"].dump() + ", seq " + std::to_string(seq_) +
           ", " + std::to_string(train_.steps) + " steps; books -> WikiText-2 valid";
  }
  std::string metric_name() const override { return "MLM ppl"; }
  double metric(double mean_loss, double) const override { return std::exp(mean_loss); }
  bool lower_is_better() const override { return true; }

  TaskModel build(const std::string& variant) const override { return build_model(resolved_, variant); }
  Batch train_batch(at::Generator& gen) const override {
    const auto starts = at::randint(static_cast<int64_t>(train_sentences_.size()), {batch_}, gen);
    std::vector<Pair> rows;
    for (int64_t i = 0; i < batch_; ++i) {
      size_t next = static_cast<size_t>(starts[i].item<int64_t>());
      rows.push_back(pair(train_sentences_, next));
    }
    return masked_batch(rows, gen);
  }
  const std::vector<Batch>& eval_batches() const override { return eval_; }
  const std::map<std::string, std::vector<Batch>>& extra_evaluations() const override { return extra_; }
  // The paper calibrated BERT's W8A8 ranges on validation batches (16 of them): here the evaluation batches, in turn.
  Batch calibration_batch(int64_t i, at::Generator&) const override { return eval_[i % eval_.size()]; }

  analysis::OutlierRows outlier_rows(const std::string& point) const override {
    return analysis::bert_outlier_rows(point);
  }
  std::map<std::string, at::Tensor> w8a8_lookups(const TaskModel& model) const override {
    const auto params = model.module->named_parameters();
    std::map<std::string, at::Tensor> lookups;
    for (const char* table : {"word_embeddings", "position_embeddings", "token_type_embeddings"})
      lookups[std::string("bert.embeddings.") + table] = params[std::string("bert.embeddings.") + table + ".weight"];
    return lookups;
  }
  std::function<std::string(const std::string&)> int8_input_point() const override {
    return analysis::bert_linear_input_point;
  }

 private:
  std::vector<std::vector<int64_t>> tokenize(const std::string& text) const {
    std::vector<std::vector<int64_t>> out;
    for (const auto& s : data::split_sentences(text)) {
      auto ids = tokenizer_->encode(s);
      if (!ids.empty()) out.push_back(std::move(ids));
    }
    return out;
  }

  // Up to eval.batches batches of pairs from consecutive sentences, masked with a fixed seed: the same for every
  // run. Stops where the sentences run out.
  std::vector<Batch> fixed_batches(const std::vector<std::vector<int64_t>>& sentences, uint64_t seed) const {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::vector<Batch> batches;
    size_t next = 0;
    for (int64_t b = 0; b < evaluation_.batches; ++b) {
      std::vector<Pair> rows;
      for (int64_t i = 0; i < batch_ && next < sentences.size(); ++i) rows.push_back(pair(sentences, next));
      if (static_cast<int64_t>(rows.size()) < batch_) break;
      batches.push_back(masked_batch(rows, gen));
    }
    return batches;
  }

  struct Pair {
    std::vector<int64_t> ids;  // [CLS] A [SEP] B [SEP]
    int64_t second = 0;        // where segment B starts
  };

  // [CLS] A [SEP] B [SEP] from the sentences at `next` onwards: A takes sentences up to half the budget, B the
  // following ones up to the rest (each truncated to fit); `next` moves past what was used.
  Pair pair(const std::vector<std::vector<int64_t>>& sentences, size_t& next) const {
    const size_t budget = static_cast<size_t>(seq_ - 3), half = budget / 2;
    std::vector<int64_t> a, b;
    auto fill = [&](std::vector<int64_t>& part, size_t limit) {
      do {
        const auto& s = sentences[next % sentences.size()];
        part.insert(part.end(), s.begin(),
                    s.begin() + static_cast<std::ptrdiff_t>(std::min(s.size(), limit - part.size())));
        ++next;
      } while (part.size() < limit && sentences[next % sentences.size()].size() <= limit - part.size());
    };
    fill(a, half);
    fill(b, budget - a.size());
    Pair p{{cls_}, 0};
    p.ids.insert(p.ids.end(), a.begin(), a.end());
    p.ids.push_back(sep_);
    p.second = static_cast<int64_t>(p.ids.size());
    p.ids.insert(p.ids.end(), b.begin(), b.end());
    p.ids.push_back(sep_);
    return p;
  }

  // Input B x 4 x seq (ids, segment ids, attention mask, masked positions) and targets: the original ids of the
  // masked tokens, in row-major order (the model predicts those positions only).
  Batch masked_batch(const std::vector<Pair>& rows, at::Generator& gen) const {
    const int64_t B = static_cast<int64_t>(rows.size());
    auto ids = at::full({B, seq_}, pad_, at::kLong), types = at::zeros({B, seq_}, at::kLong),
         keep = at::zeros({B, seq_}, at::kLong);
    for (int64_t i = 0; i < B; ++i) {
      const auto& row = rows[static_cast<size_t>(i)];
      const int64_t n = static_cast<int64_t>(row.ids.size());
      ids[i].slice(0, 0, n).copy_(at::tensor(row.ids, at::kLong));
      types[i].slice(0, row.second, n).fill_(1);
      keep[i].slice(0, 0, n).fill_(1);
    }
    const auto special = ids.eq(cls_).logical_or(ids.eq(sep_)).logical_or(ids.eq(pad_));
    const auto masked = at::rand({B, seq_}, gen).lt(mask_rate_).logical_and(special.logical_not());
    const auto roll = at::rand({B, seq_}, gen);
    const auto random_ids = at::randint(tokenizer_->size(), {B, seq_}, gen);
    auto input = ids.masked_fill(masked.logical_and(roll.lt(0.8)), mask_);
    input = at::where(masked.logical_and(roll.ge(0.8)).logical_and(roll.lt(0.9)), random_ids, input);
    return {at::stack({input, types, keep, masked.to(at::kLong)}, 1), ids.index({masked})};
  }

  int64_t seq_ = 128, batch_ = 32;
  double mask_rate_ = 0.15;
  std::unique_ptr<data::WordPieceTokenizer> tokenizer_;
  int64_t pad_ = 0, cls_ = 0, sep_ = 0, mask_ = 0;
  std::vector<std::vector<int64_t>> train_sentences_;
  std::vector<Batch> eval_;
  std::map<std::string, std::vector<Batch>> extra_;  // "books": the held-out sentences
};

}  // namespace

TaskModel build_bert_model(const nlohmann::json& task, const std::string& variant) {
  models::BertConfig c;
  const auto &m = task.at("model"), &d = task.at("derived");
  c.d_model = m.at("d_model"), c.num_layers = m.at("layers"), c.num_heads = m.at("heads"), c.d_ff = m.at("d_ff");
  c.dropout = m.at("dropout"), c.attention_dropout = m.at("attention_dropout"), c.init_std = m.at("init_std");
  c.vocab_size = d.at("vocab_size"), c.max_positions = d.at("max_positions");
  c.variant = nn::parse_attention_variant(variant);
  models::BertForMaskedLM model(c);
  // input: B x 3 x T int64 = token ids, segment ids, attention mask (logits at every position), or B x 4 x T with
  // the positions to predict (their logits only, N x vocab).
  return {model.ptr(),
          [model](const at::Tensor& input) mutable {
            TORCH_CHECK(input.dim() == 3 && (input.size(1) == 3 || input.size(1) == 4),
                        "bert: input must be B x 3 x T or B x 4 x T, got ", input.sizes());
            return model->forward(input.select(1, 0), input.select(1, 1), input.select(1, 2),
                                  input.size(1) == 4 ? input.select(1, 3) : at::Tensor());
          },
          [model](nn::ActivationPointsPtr p) mutable { model->set_activation_points(std::move(p)); }};
}

std::unique_ptr<Task> make_bert_task(ConfigReader& config, const std::string& data_dir) {
  return std::make_unique<BertTask>(config, data_dir);
}

}  // namespace outeffhop::experiment
