// Transformer blocks: every mixer (attention variants, Hopfield layers) in pre-LN and post-LN blocks runs forward and
// backward, causal blocks never look ahead, padding is respected, cross-attention reads the memory.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "outeffhop/nn/transformer_block.h"
#include "test_util.h"

namespace outeffhop::nn {
namespace {

using namespace outeffhop::testing;

TransformerBlockOptions block_options(const std::string& mixer, NormPosition norm) {
  TransformerBlockOptions o;
  o.d_model = 16, o.num_heads = 4, o.d_ff = 32, o.norm = norm;
  if (mixer.rfind("hopfield:", 0) == 0) {
    HopfieldOptions h;
    h.input_size = 16, h.num_heads = 4, h.association = mixer.substr(9);
    o.hopfield = h;
  } else {
    o.variant = parse_attention_variant(mixer);
  }
  return o;
}

const std::vector<std::string> kMixers = {"softmax", "softmax1", "clipped_softmax1(-0.025,1)", "gated_softmax1(linear)",
                                          "sink", "hopfield:softmax1", "hopfield:entmax_alpha"};

TEST(TransformerBlock, EveryMixerTrainsInPreAndPostLnAndNeverLooksAhead) {
  torch::manual_seed(2);
  const auto x = torch::randn({2, 7, 16});
  for (const auto& mixer : kMixers) {
    for (const auto norm : {NormPosition::kPre, NormPosition::kPost}) {
      TransformerBlock block(block_options(mixer, norm));
      block->eval();
      const auto out = block->forward(x, {}, /*causal=*/true);
      ASSERT_EQ(out.sizes(), x.sizes());
      auto future = x.clone();
      future.narrow(1, 4, 3).normal_();  // change tokens 4..6
      EXPECT_LE(max_abs_diff(block->forward(future, {}, true).narrow(1, 0, 4), out.narrow(1, 0, 4)), 1e-6) << mixer;
      EXPECT_GT(max_abs_diff(block->forward(future, {}, false).narrow(1, 0, 4), block->forward(x).narrow(1, 0, 4)),
                1e-4)
          << mixer << ": a non-causal block sees the whole sequence";
      block->train();
      block->forward(x, {}, true).pow(2).sum().backward();
      for (const auto& p : block->named_parameters())
        EXPECT_TRUE(p.value().grad().defined() && p.value().grad().isfinite().all().item<bool>()) << mixer << " "
                                                                                                 << p.key();
    }
  }
}

TEST(TransformerBlock, PreAndPostLnDiffer) {
  const auto x = torch::randn({1, 5, 16});
  torch::manual_seed(1);
  TransformerBlock pre(block_options("softmax1", NormPosition::kPre));
  torch::manual_seed(1);
  TransformerBlock post(block_options("softmax1", NormPosition::kPost));
  EXPECT_GT(max_abs_diff(pre->forward(x), post->forward(x)), 1e-3);
}

TEST(TransformerBlock, PaddingAndCrossAttention) {
  const auto x = torch::randn({2, 5, 16});
  auto keep = torch::ones({2, 5}, torch::kBool);
  keep.index_put_({0, torch::indexing::Slice(3, 5)}, false);
  for (const auto& mixer : {std::string("softmax1"), std::string("hopfield:softmax1")}) {
    TransformerBlock block(block_options(mixer, NormPosition::kPre));
    block->eval();
    auto changed = x.clone();
    changed.index_put_({0, torch::indexing::Slice(3, 5)}, 9.0);
    EXPECT_LE(max_abs_diff(block->forward(changed, keep).select(0, 0).narrow(0, 0, 3),
                           block->forward(x, keep).select(0, 0).narrow(0, 0, 3)),
              1e-5)
        << mixer;
  }
  auto o = block_options("softmax1", NormPosition::kPre);
  o.cross_attention = true;
  TransformerBlock decoder(o);
  decoder->eval();
  const auto memory = torch::randn({2, 9, 16});
  EXPECT_GT(max_abs_diff(decoder->forward(x, {}, true, memory), decoder->forward(x, {}, true, memory * 2)), 1e-4);
  EXPECT_THROW(decoder->forward(x), c10::Error);  // cross-attention needs memory
  std::set<std::string> names;
  for (const auto& p : decoder->named_parameters()) names.insert(p.key());
  for (const char* n : {"self_attn.q_proj.weight", "encoder_attn.out_proj.bias", "self_attn_layer_norm.weight",
                        "fc1.weight", "fc2.bias", "final_layer_norm.bias"})
    EXPECT_TRUE(names.count(n)) << n;
}

}  // namespace
}  // namespace outeffhop::nn
