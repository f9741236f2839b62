#include "runtime/model/config_text.h"

#include <doctest/doctest.h>

#include <string>

#include "core/error.h"

using namespace rankserve;
using namespace rankserve::runtime;

namespace {

const std::string kNemoBase = "hidden_size: 64\nnum_layers: 2\nencoder_seq_length: 128\n";
const std::string kTokenizer = "tokenizer:\n  vocab_file: nemo:abc_vocab.json\n  merge_file: nemo:abc_merges.txt\n";

ModelConfig nemo(const std::string& yaml) {
  return parse_nemo_config(yaml, "m/model_config.yaml", [](const std::string&) { return 50257; });
}

}  // namespace

TEST_CASE("reads a NeMo model_config.yaml and its tokenizer files") {
  const ModelConfig c = nemo(kNemoBase + "num_attention_heads: 4\n" + kTokenizer);
  CHECK(c.hidden_size == 64);
  CHECK(c.head_dim() == 16);
  CHECK(c.checkpoint_vocab_rows == 50304);
  const NemoTokenizerFiles files = nemo_tokenizer_files(kTokenizer, "m/model_config.yaml");
  CHECK(files.vocab == "abc_vocab.json");
  CHECK(files.merges == "abc_merges.txt");
}

// Found by tests/fuzz/nemo_config_fuzz: yaml-cpp's own exceptions escaped (not a load error naming the
// file), and sizes of 0 divided by zero (SIGFPE) further on.
TEST_CASE("a model_config.yaml of the wrong shape or with sizes of 0 is a load error naming the file and key") {
  CHECK_THROWS_WITH_AS(nemo(kNemoBase + "num_attention_heads: 4\ntokenizer: gpt2\n"),
                       doctest::Contains("m/model_config.yaml: \"tokenizer\" is not a mapping"), Error);
  CHECK_THROWS_WITH_AS(nemo(kNemoBase + "num_attention_heads: 4\ntokenizer:\n  vocab_file: {a: 1}\n"),
                       doctest::Contains("\"vocab_file\" has the wrong type"), Error);
  CHECK_THROWS_WITH_AS(nemo("[1, 2]"), doctest::Contains("m/model_config.yaml: not a mapping of config keys"), Error);
  CHECK_THROWS_WITH_AS(nemo_tokenizer_files("tokenizer: [a]\n", "m/model_config.yaml"),
                       doctest::Contains("\"tokenizer\" is not a mapping"), Error);
  CHECK_THROWS_WITH_AS(nemo(kNemoBase + "num_attention_heads: 0\n" + kTokenizer),
                       doctest::Contains("\"num_attention_heads: 0\" is out of range"), Error);
  CHECK_THROWS_WITH_AS(nemo(kNemoBase + "num_attention_heads: 4\nmake_vocab_size_divisible_by: 0\n" + kTokenizer),
                       doctest::Contains("\"make_vocab_size_divisible_by: 0\" is out of range"), Error);
  CHECK_THROWS_WITH_AS(
      nemo("hidden_size: 1073741824\nnum_layers: 2\nencoder_seq_length: 128\nnum_attention_heads: 4\n" + kTokenizer),
      doctest::Contains("\"ffn_hidden_size: 4294967296\" is out of range"), Error);
}

TEST_CASE("a config.json with sizes below 1 is a load error naming the key") {
  CHECK(parse_hf_config(R"({"model_type":"gpt2","n_embd":768,"n_layer":2,"n_head":12,"n_positions":1024,"vocab_size":50257})",
                        "c.json")
            .head_dim() == 64);
  CHECK_THROWS_WITH_AS(
      parse_hf_config(R"({"model_type":"gpt2","n_embd":-768,"n_layer":2,"n_head":12,"n_positions":1024,"vocab_size":50257})",
                      "c.json"),
      doctest::Contains("c.json: \"n_embd\" is not a positive size"), Error);
  CHECK_THROWS_WITH_AS(
      parse_hf_config(R"({"model_type":"opt","hidden_size":8,"num_hidden_layers":0,"num_attention_heads":2,"ffn_dim":8,)"
                      R"("max_position_embeddings":8,"vocab_size":8})",
                      "c.json"),
      doctest::Contains("\"num_hidden_layers\" is not a positive size"), Error);
}
