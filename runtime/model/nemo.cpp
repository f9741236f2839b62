#include "runtime/model/nemo.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>

#include "runtime/core/error.h"
#include "runtime/model/tar_archive.h"

namespace rankserve::runtime {
namespace fs = std::filesystem;

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

// The files of a checkpoint, in an extracted folder or in place inside an uncompressed .nemo tar.
class NemoFiles {
 public:
  explicit NemoFiles(const std::string& path) : path_(path), archive_(!fs::is_directory(path)) {
    if (archive_) members_ = list_tar(path);
  }

  std::string display(const std::string& name) const {
    return archive_ ? fmt::format("{}:{}", path_, name) : (fs::path(path_) / name).string();
  }

  bool exists(const std::string& name) const {
    return archive_ ? members_.count(name) > 0 : fs::exists(fs::path(path_) / name);
  }

  bool has_prefix(const std::string& prefix) const {
    if (!archive_) return fs::exists(fs::path(path_) / prefix);
    auto it = members_.lower_bound(prefix);
    return it != members_.end() && it->first.rfind(prefix, 0) == 0;
  }

  std::string read_text(const std::string& name) const {
    if (!exists(name)) throw Error(ErrorCode::load, fmt::format("load: {}: missing", display(name)));
    if (archive_) return read_tar_member(path_, members_.at(name));
    std::ifstream in(fs::path(path_) / name);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  MappedCheckpoint open_checkpoint(const std::string& name) const {
    if (!exists(name)) throw Error(ErrorCode::load, fmt::format("load: {}: missing", display(name)));
    if (!archive_) return MappedCheckpoint::open((fs::path(path_) / name).string());
    const TarMember& m = members_.at(name);
    return MappedCheckpoint::open_member(path_, m.offset, m.size, display(name));
  }

 private:
  std::string path_;
  bool archive_;
  std::map<std::string, TarMember> members_;
};

// "nemo:<hash>_<name>" names a file stored beside model_config.yaml.
std::string artifact(const std::string& reference) {
  const std::string name = reference.rfind("nemo:", 0) == 0 ? reference.substr(5) : reference;
  return fs::path(name).filename().string();
}

YAML::Node load_model_config(const NemoFiles& files) {
  try {
    return YAML::Load(files.read_text("model_config.yaml"));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::load, fmt::format("load: {}: not YAML: {}", files.display("model_config.yaml"), e.what()));
  }
}

int count_vocab(const NemoFiles& files, const std::string& name) {
  try {
    return static_cast<int>(boost::json::parse(files.read_text(name)).as_object().size());
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::load, fmt::format("load: {}: not a vocab.json: {}", files.display(name), e.what()));
  }
}

// The dimension Megatron splits a tensor along (-1: every rank holds all of it).
int partition_dim(const std::string& name) {
  auto ends = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends("query_key_value.weight") || ends("query_key_value.bias") || ends("dense_h_to_4h.weight") ||
      ends("dense_h_to_4h.bias") || ends("word_embeddings.weight") || ends("output_layer.weight")) {
    return 0;
  }
  if (ends("self_attention.dense.weight") || ends("dense_4h_to_h.weight")) return 1;
  return -1;
}

class NemoSource final : public WeightSource {
 public:
  NemoSource(const std::string& path, int tp) : files_(path), shards_(static_cast<size_t>(tp)) {}

  bool contains(const std::string& name) const override { return shard(0).contains(name); }

  at::Tensor read(const std::string& name, const std::vector<int64_t>& shape, const TensorSlice& slice,
                  at::ScalarType dtype, Init) const override {
    const int k = static_cast<int>(shards_.size());
    const int dim = k == 1 ? -1 : partition_dim(name);
    if (dim < 0) return checked(0, name, shape).read(name, slice, dtype);
    std::vector<int64_t> shard_shape = shape;
    shard_shape[dim] /= k;
    const int64_t per_shard = shard_shape[dim];
    if (slice.dim != dim) {  // not along the split: assemble the whole tensor, then cut
      std::vector<at::Tensor> parts;
      for (int j = 0; j < k; ++j) parts.push_back(checked(j, name, shard_shape).read(name, {0, 0, -1}, dtype));
      const int64_t length = slice.length < 0 ? shape[slice.dim] - slice.start : slice.length;
      return at::cat(parts, dim).narrow(slice.dim, slice.start, length).contiguous();
    }
    const int64_t length = slice.length < 0 ? shape[dim] - slice.start : slice.length;
    std::vector<at::Tensor> parts;
    for (int64_t at = slice.start; at < slice.start + length;) {  // the pieces of each shard the slice spans
      const int j = static_cast<int>(at / per_shard);
      const int64_t local = at - j * per_shard, take = std::min(per_shard - local, slice.start + length - at);
      parts.push_back(checked(j, name, shard_shape).read(name, {dim, local, take}, dtype));
      at += take;
    }
    return parts.size() == 1 ? parts[0] : at::cat(parts, dim);
  }

  uint64_t bytes_read() const override {
    uint64_t total = 0;
    for (const auto& s : shards_) total += s ? s->bytes_read() : 0;
    return total;
  }

 private:
  // Each rank opens only the shard files its slices come from.
  const MappedCheckpoint& shard(int j) const {
    auto& slot = shards_[static_cast<size_t>(j)];
    if (!slot) {
      const std::string name = shards_.size() == 1 ? "model_weights.ckpt" : fmt::format("mp_rank_{:02d}/model_weights.ckpt", j);
      if (!files_.exists(name)) {
        throw Error(ErrorCode::load, fmt::format("load: {}: missing (the config says TP {})", files_.display(name), shards_.size()));
      }
      slot = std::make_unique<MappedCheckpoint>(files_.open_checkpoint(name));
    }
    return *slot;
  }

  const MappedCheckpoint& checked(int j, const std::string& name, const std::vector<int64_t>& shard_shape) const {
    const MappedCheckpoint& s = shard(j);
    s.expect(name, shard_shape);
    return s;
  }

  NemoFiles files_;
  mutable std::vector<std::unique_ptr<MappedCheckpoint>> shards_;
};

}  // namespace

bool is_nemo_path(const std::string& path) {
  return fs::is_directory(path) ? fs::exists(fs::path(path) / "model_config.yaml") : fs::is_regular_file(path);
}

ModelConfig read_nemo_config(const std::string& path) {
  const NemoFiles files(path);
  const std::string file = files.display("model_config.yaml");
  const YAML::Node y = load_model_config(files);
  if (files.has_prefix("model_weights/")) {
    throw Error(ErrorCode::load, fmt::format("load: {}: a distributed (mcore) checkpoint; only the legacy layout "
                                             "(model_weights.ckpt) is supported", path));
  }
  if (key_or<int>(y, "pipeline_model_parallel_size", 1, file) != 1) {
    throw Error(ErrorCode::load, fmt::format("load: {}: pipeline_model_parallel_size > 1 checkpoints are not supported yet", file));
  }
  ModelConfig c;
  c.family = ModelFamily::nemo_gpt;
  c.hidden_size = key<int>(y, "hidden_size", file);
  c.num_layers = key<int>(y, "num_layers", file);
  c.num_attention_heads = key<int>(y, "num_attention_heads", file);
  c.ffn_hidden_size = key_or<int>(y, "ffn_hidden_size", 4 * c.hidden_size, file);
  c.max_position_embeddings = key_or<int>(y, "max_position_embeddings", key<int>(y, "encoder_seq_length", file), file);
  c.layernorm_epsilon = key_or<double>(y, "layernorm_epsilon", 1e-5, file);
  if (key_or<std::string>(y, "activation", "gelu", file) != "gelu") throw Error(ErrorCode::load, fmt::format("load: {}: \"activation\" is not gelu", file));
  // NeMo's "gelu" is the tanh approximation when fused or openai_gelu, else the exact erf form.
  const bool tanh = key_or<bool>(y, "bias_activation_fusion", true, file) || key_or<bool>(y, "openai_gelu", false, file);
  c.activation = tanh ? Activation::gelu_tanh : Activation::gelu_erf;
  c.tied_output = key_or<bool>(y, "share_embeddings_and_output_weights", true, file);
  c.checkpoint_tp_size = key_or<int>(y, "tensor_model_parallel_size", 1, file);
  if (!y["tokenizer"] || !y["tokenizer"]["vocab_file"]) throw Error(ErrorCode::load, fmt::format("load: {}: \"tokenizer.vocab_file\" is missing", file));
  c.vocab_size = count_vocab(files, artifact(y["tokenizer"]["vocab_file"].as<std::string>()));
  const int multiple = key_or<int>(y, "make_vocab_size_divisible_by", 128, file) * c.checkpoint_tp_size;
  c.checkpoint_vocab_rows = (c.vocab_size + multiple - 1) / multiple * multiple;
  c.eos_token_id = 50256;  // GPT-2 BPE's <|endoftext|>
  if (c.hidden_size % c.num_attention_heads != 0) throw Error(ErrorCode::load, fmt::format("load: {}: heads do not divide hidden_size", file));
  return c;
}

NemoTokenizerTexts read_nemo_tokenizer(const std::string& path) {
  const NemoFiles files(path);
  const std::string file = files.display("model_config.yaml");
  const YAML::Node y = load_model_config(files);
  const YAML::Node t = y["tokenizer"];
  for (const char* k : {"vocab_file", "merge_file"}) {
    if (!t || !t[k] || t[k].IsNull()) {
      throw Error(ErrorCode::load, fmt::format("tokenizer: {}: \"tokenizer.{}\" is missing; expected GPT-2 BPE files "
                                               "(pass --tokenizer FOLDER)", file, k));
    }
  }
  const std::string vocab = artifact(t["vocab_file"].as<std::string>()), merges = artifact(t["merge_file"].as<std::string>());
  return {files.read_text(vocab), files.display(vocab), files.read_text(merges), files.display(merges)};
}

std::unique_ptr<WeightSource> open_nemo_source(const std::string& path, const ModelConfig& config) {
  return std::make_unique<NemoSource>(path, config.checkpoint_tp_size);
}

}  // namespace rankserve::runtime
