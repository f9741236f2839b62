#include "runtime/model/model_config.h"

#include <fmt/format.h>

#include <array>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string_view>

#include "core/error.h"
#include "core/setting_error.h"
#include "runtime/model/config_text.h"

namespace rankserve::runtime {
namespace json = boost::json;

namespace {

struct RandomSize {
  const char* name;
  int num_layers, num_attention_heads, hidden_size;
};

// The OPT example's table: layers / heads / hidden.
constexpr std::array<RandomSize, 14> kRandomSizes{{{"125M", 12, 12, 768},
                                                   {"350M", 24, 16, 1024},
                                                   {"1.3B", 24, 32, 2048},
                                                   {"2.7B", 32, 32, 2560},
                                                   {"5B", 24, 32, 4096},
                                                   {"6.7B", 32, 32, 4096},
                                                   {"13B", 40, 40, 5120},
                                                   {"20B", 44, 48, 6144},
                                                   {"30B", 48, 56, 7168},
                                                   {"66B", 64, 72, 9216},
                                                   {"89B", 48, 96, 12288},
                                                   {"175B", 96, 96, 12288},
                                                   {"310B", 96, 128, 16384},
                                                   {"530B", 105, 128, 20480}}};

class ConfigReader {
 public:
  ConfigReader(const json::object& o, std::string file) : o_(o), file_(std::move(file)) {}
  bool has(const char* key) const { return o_.contains(key) && !o_.at(key).is_null(); }
  int integer(const char* key) const {
    if (!has(key)) fail(key, "is missing");
    try {
      return o_.at(key).to_number<int>();
    } catch (const std::exception&) {
      fail(key, "is not an integer");
    }
  }
  int integer_or(const char* key, int fallback) const { return has(key) ? integer(key) : fallback; }
  // A size: an integer >= 1 (the model multiplies and divides by them).
  int size(const char* key) const { return positive(key, integer(key)); }
  int size_or(const char* key, int64_t fallback) const { return has(key) ? size(key) : positive(key, fallback); }
  int positive(const char* key, int64_t value) const {
    if (value < 1 || value > std::numeric_limits<int>::max()) fail(key, "is not a positive size that fits in 32 bits");
    return static_cast<int>(value);
  }
  double number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    try {
      return o_.at(key).to_number<double>();
    } catch (const std::exception&) {
      fail(key, "is not a number");
    }
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!o_.at(key).is_bool()) fail(key, "is not true or false");
    return o_.at(key).as_bool();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!o_.at(key).is_string()) fail(key, "is not a string");
    return std::string(o_.at(key).as_string());
  }
  [[noreturn]] void fail(const char* key, const char* what) const {
    throw Error(ErrorCode::load, fmt::format("load: {}: \"{}\" {}", file_, key, what));
  }

 private:
  const json::object& o_;
  std::string file_;
};

}  // namespace

ModelConfig read_hf_config(const std::string& folder) {
  const std::string path = (std::filesystem::path(folder) / "config.json").string();
  std::ifstream in(path);
  if (!in) {
    throw SettingError(ErrorCode::load,
                       fmt::format("load: {}: cannot open (is {} a model folder?)", path, setting_words(Setting::model_path)),
                       Setting::model_path);
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_hf_config(text, path);
}

ModelConfig parse_hf_config(const std::string& text, const std::string& path) {
  json::value doc;
  try {
    doc = json::parse(text);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::load, fmt::format("load: {}: not JSON: {}", path, e.what()));
  }
  if (!doc.is_object()) throw Error(ErrorCode::load, fmt::format("load: {}: not a JSON object", path));
  ConfigReader r(doc.as_object(), path);
  const std::string type = r.string_or("model_type", "");
  ModelConfig c;
  if (type == "gpt2") {
    c.family = ModelFamily::gpt2;
    c.hidden_size = r.size("n_embd");
    c.num_layers = r.size("n_layer");
    c.num_attention_heads = r.size("n_head");
    c.ffn_hidden_size = r.size_or("n_inner", int64_t{4} * c.hidden_size);
    c.max_position_embeddings = r.size("n_positions");
    c.vocab_size = r.size("vocab_size");
    c.layernorm_epsilon = r.number_or("layer_norm_epsilon", 1e-5);
    const std::string act = r.string_or("activation_function", "gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh") c.activation = Activation::gelu_tanh;
    else if (act == "gelu") c.activation = Activation::gelu_erf;
    else if (act == "relu") c.activation = Activation::relu;
    else r.fail("activation_function", "names an activation rankserve does not implement");
    c.eos_token_id = r.integer_or("eos_token_id", 50256);
  } else if (type == "opt") {
    c.family = ModelFamily::opt;
    c.hidden_size = r.size("hidden_size");
    c.num_layers = r.size("num_hidden_layers");
    c.num_attention_heads = r.size("num_attention_heads");
    c.ffn_hidden_size = r.size("ffn_dim");
    c.max_position_embeddings = r.size("max_position_embeddings");
    c.vocab_size = r.size("vocab_size");
    c.position_offset = 2;
    c.pre_layer_norm = r.boolean_or("do_layer_norm_before", true);
    c.word_embed_proj_dim = r.size_or("word_embed_proj_dim", c.hidden_size);
    if (r.string_or("activation_function", "relu") != "relu") r.fail("activation_function", "is not relu");
    if (!r.boolean_or("enable_bias", true)) r.fail("enable_bias", "is false; bias-free OPT is not supported");
    c.activation = Activation::relu;
    c.bos_token_id = r.integer_or("bos_token_id", 2);
    c.eos_token_id = r.integer_or("eos_token_id", 2);
  } else {
    r.fail("model_type", "is not gpt2 or opt");
  }
  if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0) {
    r.fail("num_attention_heads", "does not divide the hidden size");
  }
  c.torch_dtype = r.string_or("torch_dtype", "");
  return c;
}

ModelConfig random_model_config(const std::string& name) {
  std::string known;
  for (const RandomSize& s : kRandomSizes) {
    if (name == fmt::format("random/{}", s.name)) {
      ModelConfig c;
      c.family = ModelFamily::opt;
      c.num_layers = s.num_layers;
      c.num_attention_heads = s.num_attention_heads;
      c.hidden_size = s.hidden_size;
      c.ffn_hidden_size = 4 * s.hidden_size;
      c.vocab_size = 50272;
      c.max_position_embeddings = 2048;
      c.position_offset = 2;
      c.activation = Activation::relu;
      c.bos_token_id = 2;
      c.eos_token_id = 2;
      return c;
    }
    known += fmt::format("{}random/{}", known.empty() ? "" : ", ", s.name);
  }
  // A known size that is the asked one with digits left out before its unit: the OPT example's README
  // lists "random/17B" where its code means 175B.
  std::string suggestion;
  const std::string_view asked = std::string_view(name).substr(name.rfind('/') + 1);
  for (const RandomSize& s : kRandomSizes) {
    const std::string_view size(s.name);
    if (asked.size() >= 2 && size.size() > asked.size() && size.back() == asked.back() &&
        size.starts_with(asked.substr(0, asked.size() - 1))) {
      suggestion = fmt::format("; did you mean random/{}?", s.name);
    }
  }
  throw SettingError(ErrorCode::usage,
                     fmt::format("options: {} {} is not a known random model ({}){}", setting_words(Setting::model_path), name,
                                 known, suggestion),
                     Setting::model_path);
}

void check_shardable(const ModelConfig& c, int tp_size, int pp_size) {
  if (c.num_attention_heads % tp_size != 0 || c.ffn_hidden_size % tp_size != 0) {
    throw SettingError(
        ErrorCode::usage,
        fmt::format("options: {} {} does not divide the model's {} attention heads and ffn size {} (choose a divisor)",
                    setting_words(Setting::tensor_parallel_size), tp_size, c.num_attention_heads, c.ffn_hidden_size),
        Setting::tensor_parallel_size);
  }
  if (c.num_layers < pp_size) {
    throw SettingError(ErrorCode::usage,
                       fmt::format("options: {} {} exceeds the model's {} layers", setting_words(Setting::pipeline_parallel_size),
                                   pp_size, c.num_layers),
                       Setting::pipeline_parallel_size);
  }
}

std::string describe(const ModelConfig& c) {
  const char* family = c.family == ModelFamily::gpt2 ? "gpt2" : c.family == ModelFamily::opt ? "opt" : "nemo-gpt";
  return fmt::format("{}: {} layers, hidden {}, {} heads, ffn {}, vocab {}, context {}{}", family, c.num_layers, c.hidden_size,
                     c.num_attention_heads, c.ffn_hidden_size, c.vocab_size, c.max_position_embeddings,
                     c.pre_layer_norm ? "" : ", post-LN");
}

}  // namespace rankserve::runtime
