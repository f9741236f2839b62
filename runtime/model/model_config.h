// The architecture of a GPT-family model, read from a checkpoint's config (Hugging Face GPT-2 and
// OPT config.json) or from the built-in random/<size> table. Torch-free.
#pragma once

#include <string>

namespace rankserve::runtime {

enum class ModelFamily { gpt2, opt, nemo_gpt };
enum class Activation { gelu_tanh, gelu_erf, relu };

struct ModelConfig {
  ModelFamily family = ModelFamily::opt;
  int num_layers = 0;
  int hidden_size = 0;
  int num_attention_heads = 0;
  int ffn_hidden_size = 0;
  int vocab_size = 0;               // the tokenizer's vocabulary (rows past it are never sampled)
  int max_position_embeddings = 0;  // longest sequence, in tokens
  int position_offset = 0;          // OPT looks up position p at row p + 2
  double layernorm_epsilon = 1e-5;
  Activation activation = Activation::gelu_tanh;
  bool pre_layer_norm = true;   // false: OPT-350m's post-LN (and no final layer norm)
  int word_embed_proj_dim = 0;  // OPT: != hidden_size means project_in / project_out
  int bos_token_id = -1;        // prepended to prompts (OPT's </s>), -1 none
  int kv_channels = 0;          // per-head width; 0: hidden_size / heads (NeMo may set another)
  // NeMo: the checkpoint's padded vocabulary rows, its TP and PP sizes, an untied output layer, and
  // megatron_legacy's fused QKV rows ({q,k,v}, head, dim) per TP shard instead of (head, {q,k,v}, dim).
  int checkpoint_vocab_rows = 0;
  int checkpoint_tp_size = 1;
  int checkpoint_pp_size = 1;
  bool tied_output = true;
  bool qkv_parts_first = false;
  int eos_token_id = 50256;
  std::string torch_dtype;  // the checkpoint's stored type as config.json names it ("float16", "bfloat16"); "" unknown

  int head_dim() const { return kv_channels > 0 ? kv_channels : hidden_size / num_attention_heads; }
  int attention_width() const { return num_attention_heads * head_dim(); }  // the width of q, k and v
  int embed_dim() const { return word_embed_proj_dim > 0 ? word_embed_proj_dim : hidden_size; }
};

// The layers pipeline stage `pp_rank` of `pp_size` holds, [first, first + count): the first
// num_layers % pp_size stages take one more (GptModel's split, also the memory estimates').
struct StageLayers {
  int first = 0;
  int count = 0;
};
inline StageLayers stage_layers(int num_layers, int pp_size, int pp_rank) {
  const int base = num_layers / pp_size, extra = num_layers % pp_size;
  return StageLayers{pp_rank * base + (pp_rank < extra ? pp_rank : extra), base + (pp_rank < extra ? 1 : 0)};
}

// Throws Error(usage) naming --tp or --pp when `config` cannot be split over tp_size x pp_size ranks:
// tp_size must divide the heads and the ffn size, pp_size may not exceed the layers.
void check_shardable(const ModelConfig& config, int tp_size, int pp_size);

// Reads config.json in `folder`. Throws Error(load) naming the file and the key.
ModelConfig read_hf_config(const std::string& folder);

// "random/125M" ... "random/530B": the OPT example's table (ffn = 4 x hidden, OPT vocabulary).
// Throws Error(usage) listing the known sizes.
ModelConfig random_model_config(const std::string& name);

std::string describe(const ModelConfig& config);

}  // namespace rankserve::runtime
