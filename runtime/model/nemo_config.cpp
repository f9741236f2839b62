#include "runtime/model/config_text.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "runtime/core/error.h"

namespace rankserve::runtime {
namespace {

template <typename T>
T key(const YAML::Node& node, const char* name, const std::string& file) {
  if (!node[name] || node[name].IsNull()) throw Error(ErrorCode::load, fmt::format("load: {}: \"{}\" is missing", file, name));
  try {
    return node[name].as<T>();
  } catch (const std::exception&) {
    throw Error(ErrorCode::load, fmt::format("load: {}: \"{}\" has the wrong type", file, name));
  }
}

template <typename T>
T key_or(const YAML::Node& node, const char* name, T fallback, const std::string& file) {
  return node[name] && !node[name].IsNull() ? key<T>(node, name, file) : fallback;
}

// "nemo:<hash>_<name>" names a file stored beside model_config.yaml.
std::string artifact(const std::string& reference) {
  const std::string name = reference.rfind("nemo:", 0) == 0 ? reference.substr(5) : reference;
  return std::filesystem::path(name).filename().string();
}

YAML::Node load_yaml(const std::string& yaml, const std::string& file) {
  try {
    return YAML::Load(yaml);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::load, fmt::format("load: {}: not YAML: {}", file, e.what()));
  }
}

}  // namespace

ModelConfig parse_nemo_config(const std::string& yaml, const std::string& file,
                              const std::function<int(const std::string& vocab_file)>& vocab_size) {
  const YAML::Node y = load_yaml(yaml, file);
  if (key_or<bool>(y, "mcore_gpt", false, file)) {
    throw Error(ErrorCode::load, fmt::format("load: {}: \"mcore_gpt: true\" (Megatron core layout); only the legacy "
                                             "language_model layout is supported", file));
  }
  // Architectures this runtime does not implement are refused by name rather than run wrongly.
  auto require = [&](const char* name, const std::string& fallback, std::initializer_list<const char*> supported) {
    const std::string value = key_or<std::string>(y, name, fallback, file);
    for (const char* s : supported) if (value == s) return;
    throw Error(ErrorCode::load, fmt::format("load: {}: \"{}: {}\" is not supported (supported: {})", file, name, value,
                                             fmt::join(supported, ", ")));
  };
  require("activation", "gelu", {"gelu"});
  require("normalization", "layernorm", {"layernorm"});
  require("position_embedding_type", "learned_absolute", {"learned_absolute"});
  require("transformer_block_type", "pre_ln", {"pre_ln"});
  if (!key_or<bool>(y, "bias", true, file)) throw Error(ErrorCode::load, fmt::format("load: {}: \"bias: false\" is not supported", file));
  ModelConfig c;
  c.family = ModelFamily::nemo_gpt;
  c.hidden_size = key<int>(y, "hidden_size", file);
  c.num_layers = key<int>(y, "num_layers", file);
  c.num_attention_heads = key<int>(y, "num_attention_heads", file);
  c.ffn_hidden_size = key_or<int>(y, "ffn_hidden_size", 4 * c.hidden_size, file);
  c.max_position_embeddings = key_or<int>(y, "max_position_embeddings", key<int>(y, "encoder_seq_length", file), file);
  c.layernorm_epsilon = key_or<double>(y, "layernorm_epsilon", 1e-5, file);
  // NeMo's "gelu" is the tanh approximation when fused or openai_gelu, else the exact erf form.
  const bool tanh = key_or<bool>(y, "bias_activation_fusion", true, file) || key_or<bool>(y, "openai_gelu", false, file);
  c.activation = tanh ? Activation::gelu_tanh : Activation::gelu_erf;
  c.tied_output = key_or<bool>(y, "share_embeddings_and_output_weights", true, file);
  c.checkpoint_tp_size = key_or<int>(y, "tensor_model_parallel_size", 1, file);
  c.checkpoint_pp_size = key_or<int>(y, "pipeline_model_parallel_size", 1, file);
  c.kv_channels = key_or<int>(y, "kv_channels", 0, file);
  c.qkv_parts_first = key_or<bool>(y, "megatron_legacy", false, file);
  if (const int virtual_stages = key_or<int>(y, "virtual_pipeline_model_parallel_size", 1, file); virtual_stages > 1) {
    throw Error(ErrorCode::load, fmt::format("load: {}: \"virtual_pipeline_model_parallel_size: {}\" (interleaved pipeline "
                                             "chunks) is not supported", file, virtual_stages));
  }
  const int groups = key_or<int>(y, "num_query_groups", c.num_attention_heads, file);
  if (groups != c.num_attention_heads) {
    throw Error(ErrorCode::load, fmt::format("load: {}: \"num_query_groups: {}\" (grouped-query attention) is not supported", file, groups));
  }
  if (c.checkpoint_tp_size < 1 || c.checkpoint_pp_size < 1 || c.num_layers % c.checkpoint_pp_size != 0 ||
      c.num_attention_heads % c.checkpoint_tp_size != 0) {
    throw Error(ErrorCode::load, fmt::format("load: {}: tensor_model_parallel_size {} and pipeline_model_parallel_size {} do not "
                                             "divide the {} heads and {} layers", file, c.checkpoint_tp_size,
                                             c.checkpoint_pp_size, c.num_attention_heads, c.num_layers));
  }
  if (!y["tokenizer"] || !y["tokenizer"]["vocab_file"]) throw Error(ErrorCode::load, fmt::format("load: {}: \"tokenizer.vocab_file\" is missing", file));
  c.vocab_size = vocab_size(artifact(y["tokenizer"]["vocab_file"].as<std::string>()));
  const int multiple = key_or<int>(y, "make_vocab_size_divisible_by", 128, file) * c.checkpoint_tp_size;
  c.checkpoint_vocab_rows = (c.vocab_size + multiple - 1) / multiple * multiple;
  c.eos_token_id = 50256;  // GPT-2 BPE's <|endoftext|>
  if (c.kv_channels == 0 && c.hidden_size % c.num_attention_heads != 0) {
    throw Error(ErrorCode::load, fmt::format("load: {}: num_attention_heads does not divide hidden_size (and kv_channels is not set)", file));
  }
  return c;
}

NemoTokenizerFiles nemo_tokenizer_files(const std::string& yaml, const std::string& file) {
  const YAML::Node y = load_yaml(yaml, file);
  const YAML::Node t = y["tokenizer"];
  for (const char* k : {"vocab_file", "merge_file"}) {
    if (!t || !t[k] || t[k].IsNull()) {
      throw Error(ErrorCode::load, fmt::format("tokenizer: {}: \"tokenizer.{}\" is missing; expected GPT-2 BPE files "
                                               "(pass --tokenizer FOLDER)", file, k));
    }
  }
  return {artifact(t["vocab_file"].as<std::string>()), artifact(t["merge_file"].as<std::string>())};
}

}  // namespace rankserve::runtime
