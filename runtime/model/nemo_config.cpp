#include "runtime/model/config_text.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/setting_error.h"

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

// The document, which must be a mapping (key<T> indexes it; yaml-cpp throws its own exception for
// a scalar or a sequence).
YAML::Node load_yaml(const std::string& yaml, const std::string& file) {
  YAML::Node y;
  try {
    y = YAML::Load(yaml);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::load, fmt::format("load: {}: not YAML: {}", file, e.what()));
  }
  if (!y.IsMap())
    throw Error(ErrorCode::load, fmt::format("load: {}: not a mapping of config keys; expected NeMo's model_config.yaml", file));
  return y;
}

// tokenizer.<name> as the name of a file beside model_config.yaml; "" when missing.
std::string tokenizer_file(const YAML::Node& y, const char* name, const std::string& file) {
  const YAML::Node t = y["tokenizer"];
  if (!t || t.IsNull()) return "";
  if (!t.IsMap())
    throw Error(ErrorCode::load,
                fmt::format("load: {}: \"tokenizer\" is not a mapping; expected vocab_file and merge_file under it", file));
  if (!t[name] || t[name].IsNull()) return "";
  return artifact(key<std::string>(t, name, file));
}

// A size from the config: from `min` to INT_MAX, so the products the model forms of them are checked here.
int checked_size(int64_t value, const char* name, const std::string& file, int64_t min = 1) {
  if (value < min || value > std::numeric_limits<int>::max()) {
    throw Error(ErrorCode::load, fmt::format("load: {}: \"{}: {}\" is out of range; expected {} to {}", file, name, value, min,
                                             std::numeric_limits<int>::max()));
  }
  return static_cast<int>(value);
}

}  // namespace

ModelConfig parse_nemo_config(const std::string& yaml, const std::string& file,
                              const std::function<int(const std::string& vocab_file)>& vocab_size) {
  const YAML::Node y = load_yaml(yaml, file);
  if (key_or<bool>(y, "mcore_gpt", false, file)) {
    throw Error(ErrorCode::load, fmt::format("load: {}: \"mcore_gpt: true\" (Megatron core layout); only the legacy "
                                             "language_model layout is supported",
                                             file));
  }
  // Architectures this runtime does not implement are refused by name rather than run wrongly.
  auto require = [&](const char* name, const std::string& fallback, std::initializer_list<const char*> supported) {
    const std::string value = key_or<std::string>(y, name, fallback, file);
    for (const char* s : supported)
      if (value == s) return;
    throw Error(ErrorCode::load, fmt::format("load: {}: \"{}: {}\" is not supported (supported: {})", file, name, value,
                                             fmt::join(supported, ", ")));
  };
  require("activation", "gelu", {"gelu"});
  require("normalization", "layernorm", {"layernorm"});
  require("position_embedding_type", "learned_absolute", {"learned_absolute"});
  require("transformer_block_type", "pre_ln", {"pre_ln"});
  if (!key_or<bool>(y, "bias", true, file))
    throw Error(ErrorCode::load, fmt::format("load: {}: \"bias: false\" is not supported", file));
  ModelConfig c;
  c.family = ModelFamily::nemo_gpt;
  c.hidden_size = checked_size(key<int64_t>(y, "hidden_size", file), "hidden_size", file);
  c.num_layers = checked_size(key<int64_t>(y, "num_layers", file), "num_layers", file);
  c.num_attention_heads = checked_size(key<int64_t>(y, "num_attention_heads", file), "num_attention_heads", file);
  c.ffn_hidden_size =
      checked_size(key_or<int64_t>(y, "ffn_hidden_size", int64_t{4} * c.hidden_size, file), "ffn_hidden_size", file);
  c.max_position_embeddings =
      checked_size(key_or<int64_t>(y, "max_position_embeddings", key<int64_t>(y, "encoder_seq_length", file), file),
                   "max_position_embeddings", file);
  c.layernorm_epsilon = key_or<double>(y, "layernorm_epsilon", 1e-5, file);
  // NeMo's "gelu" is the tanh approximation when fused or openai_gelu, else the exact erf form.
  const bool tanh = key_or<bool>(y, "bias_activation_fusion", true, file) || key_or<bool>(y, "openai_gelu", false, file);
  c.activation = tanh ? Activation::gelu_tanh : Activation::gelu_erf;
  c.tied_output = key_or<bool>(y, "share_embeddings_and_output_weights", true, file);
  c.checkpoint_tp_size = key_or<int>(y, "tensor_model_parallel_size", 1, file);
  c.checkpoint_pp_size = key_or<int>(y, "pipeline_model_parallel_size", 1, file);
  c.kv_channels = checked_size(key_or<int64_t>(y, "kv_channels", 0, file), "kv_channels", file, 0);  // 0: unset
  c.qkv_parts_first = key_or<bool>(y, "megatron_legacy", false, file);
  if (const int virtual_stages = key_or<int>(y, "virtual_pipeline_model_parallel_size", 1, file); virtual_stages > 1) {
    throw Error(ErrorCode::load, fmt::format("load: {}: \"virtual_pipeline_model_parallel_size: {}\" (interleaved pipeline "
                                             "chunks) is not supported",
                                             file, virtual_stages));
  }
  const int groups = key_or<int>(y, "num_query_groups", c.num_attention_heads, file);
  if (groups != c.num_attention_heads) {
    throw Error(ErrorCode::load,
                fmt::format("load: {}: \"num_query_groups: {}\" (grouped-query attention) is not supported", file, groups));
  }
  if (c.checkpoint_tp_size < 1 || c.checkpoint_pp_size < 1 || c.num_layers % c.checkpoint_pp_size != 0 ||
      c.num_attention_heads % c.checkpoint_tp_size != 0) {
    throw Error(ErrorCode::load,
                fmt::format("load: {}: tensor_model_parallel_size {} and pipeline_model_parallel_size {} do not "
                            "divide the {} heads and {} layers",
                            file, c.checkpoint_tp_size, c.checkpoint_pp_size, c.num_attention_heads, c.num_layers));
  }
  const std::string vocab = tokenizer_file(y, "vocab_file", file);
  if (vocab.empty()) throw Error(ErrorCode::load, fmt::format("load: {}: \"tokenizer.vocab_file\" is missing", file));
  c.vocab_size = vocab_size(vocab);
  const int64_t multiple =
      int64_t{checked_size(key_or<int64_t>(y, "make_vocab_size_divisible_by", 128, file), "make_vocab_size_divisible_by", file)} *
      c.checkpoint_tp_size;
  c.checkpoint_vocab_rows =
      checked_size((c.vocab_size + multiple - 1) / multiple * multiple, "make_vocab_size_divisible_by", file);
  c.eos_token_id = 50256;  // GPT-2 BPE's <|endoftext|>
  if (c.kv_channels == 0 && c.hidden_size % c.num_attention_heads != 0) {
    throw Error(ErrorCode::load,
                fmt::format("load: {}: num_attention_heads does not divide hidden_size (and kv_channels is not set)", file));
  }
  return c;
}

NemoTokenizerFiles nemo_tokenizer_files(const std::string& yaml, const std::string& file) {
  const YAML::Node y = load_yaml(yaml, file);
  NemoTokenizerFiles out{tokenizer_file(y, "vocab_file", file), tokenizer_file(y, "merge_file", file)};
  for (const auto& [k, value] : {std::pair{"vocab_file", out.vocab}, std::pair{"merge_file", out.merges}}) {
    if (value.empty()) {
      throw SettingError(ErrorCode::load,
                         fmt::format("tokenizer: {}: \"tokenizer.{}\" is missing; expected GPT-2 BPE files (pass {})", file, k,
                                     setting_words(Setting::tokenizer_path)),
                         Setting::tokenizer_path);
    }
  }
  return out;
}

}  // namespace rankserve::runtime
