#include "runtime/model/nemo.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "core/error.h"
#include "core/log.h"
#include "runtime/model/config_text.h"
#include "runtime/model/tar_archive.h"

namespace rankserve::runtime {
namespace fs = std::filesystem;

namespace {

// The files of a checkpoint: an extracted folder, an uncompressed .nemo tar (read in place) or a
// gzip-compressed one (decompressed as it is read; its listing is made once per process).
class NemoFiles {
 public:
  explicit NemoFiles(const std::string& path) : path_(path), archive_(!fs::is_directory(path)) {
    if (archive_) listing_ = listing_of(path);
  }

  std::string display(const std::string& name) const {
    return archive_ ? fmt::format("{}:{}", path_, name) : (fs::path(path_) / name).string();
  }

  bool exists(const std::string& name) const {
    return archive_ ? listing_->members.count(name) > 0 : fs::exists(fs::path(path_) / name);
  }

  bool has_prefix(const std::string& prefix) const {
    if (!archive_) return fs::exists(fs::path(path_) / prefix);
    auto it = listing_->members.lower_bound(prefix);
    return it != listing_->members.end() && it->first.rfind(prefix, 0) == 0;
  }

  std::string read_text(const std::string& name) const {
    if (!exists(name)) throw Error(ErrorCode::load, fmt::format("load: {}: missing", display(name)));
    if (archive_) return read_tar_member(path_, *listing_, name);
    std::ifstream in(fs::path(path_) / name);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  MappedCheckpoint open_checkpoint(const std::string& name) const {
    if (!exists(name)) throw Error(ErrorCode::load, fmt::format("load: {}: missing", display(name)));
    if (!archive_) return MappedCheckpoint::open((fs::path(path_) / name).string());
    if (listing_->gzip) {
      log::info("loading: decompressing {} (extract the .nemo once with tar xzf for faster starts)", display(name));
      return MappedCheckpoint::open_bytes(read_tar_member(path_, *listing_, name), display(name));
    }
    const TarMember& m = listing_->members.at(name);
    return MappedCheckpoint::open_member(path_, m.offset, m.size, display(name));
  }

 private:
  // The config is read several times at start-up: a gzip archive is listed (decompressed) once.
  static std::shared_ptr<const TarListing> listing_of(const std::string& path) {
    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<const TarListing>> listings;
    std::lock_guard lock(mutex);
    auto& slot = listings[fs::absolute(path).string()];
    if (!slot) slot = std::make_shared<const TarListing>(list_tar(path, uint64_t{64} << 20));
    return slot;
  }

  std::string path_;
  bool archive_;
  std::shared_ptr<const TarListing> listing_;
};

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
  auto ends = [&](std::string_view suffix) { return name.ends_with(suffix); };
  if (ends("query_key_value.weight") || ends("query_key_value.bias") || ends("dense_h_to_4h.weight") ||
      ends("dense_h_to_4h.bias") || ends("word_embeddings.weight") || ends("output_layer.weight")) {
    return 0;
  }
  if (ends("self_attention.dense.weight") || ends("dense_4h_to_h.weight")) return 1;
  return -1;
}

// Where a tensor lies in a checkpoint saved with PP stages: the stage, and its name there (each
// stage numbers its layers from 0; the final layer norm, an output layer and the last stage's copy
// of tied word embeddings lie in the last stage).
struct Located {
  int stage = 0;
  std::string name;
};

class NemoSource final : public WeightSource {
 public:
  NemoSource(const std::string& path, const ModelConfig& c)
      : files_(path),
        tp_(c.checkpoint_tp_size),
        pp_(c.checkpoint_pp_size),
        layers_per_stage_(c.num_layers / pp_),
        heads_(c.num_attention_heads),
        head_dim_(c.head_dim()),
        qkv_parts_first_(c.qkv_parts_first),
        shards_(static_cast<size_t>(tp_ * pp_)) {}

  bool contains(const std::string& name) const override {
    const Located at = locate(name);
    return shard(0, at.stage).contains(at.name);
  }

  at::Tensor read(const std::string& name, const std::vector<int64_t>& shape, const TensorSlice& slice, at::ScalarType dtype,
                  Init) const override {
    const Located at = locate(name);
    if (qkv_parts_first_ && (name.ends_with("query_key_value.weight") || name.ends_with("query_key_value.bias"))) {
      return read_parts_first_qkv(at, shape, slice, dtype);
    }
    const int dim = tp_ == 1 ? -1 : partition_dim(name);
    if (dim < 0) return checked(0, at, shape).read(at.name, slice, dtype);
    std::vector<int64_t> shard_shape = shape;
    shard_shape[dim] /= tp_;
    const int64_t per_shard = shard_shape[dim];
    if (slice.dim != dim) {  // not along the split: assemble the whole tensor, then cut
      std::vector<at::Tensor> parts;
      for (int j = 0; j < tp_; ++j) parts.push_back(checked(j, at, shard_shape).read(at.name, {0, 0, -1}, dtype));
      const int64_t length = slice.length < 0 ? shape[slice.dim] - slice.start : slice.length;
      return at::cat(parts, dim).narrow(slice.dim, slice.start, length).contiguous();
    }
    const int64_t length = slice.length < 0 ? shape[dim] - slice.start : slice.length;
    std::vector<at::Tensor> parts;
    for (int64_t row = slice.start; row < slice.start + length;) {  // the pieces of each shard the slice spans
      const int j = static_cast<int>(row / per_shard);
      const int64_t local = row - j * per_shard, take = std::min(per_shard - local, slice.start + length - row);
      parts.push_back(checked(j, at, shard_shape).read(at.name, {dim, local, take}, dtype));
      row += take;
    }
    return parts.size() == 1 ? parts[0] : at::cat(parts, dim);
  }

  uint64_t bytes_read() const override {
    uint64_t total = 0;
    for (const auto& s : shards_) total += s ? s->bytes_read() : 0;
    return total;
  }

 private:
  Located locate(const std::string& name) const {
    if (pp_ == 1) return {0, name};
    static const std::string kLayers = "encoder.layers.";
    if (const size_t at = name.find(kLayers); at != std::string::npos) {
      const size_t digits = at + kLayers.size(), dot = name.find('.', digits);
      const int layer = std::stoi(name.substr(digits, dot - digits));
      return {layer / layers_per_stage_, name.substr(0, digits) + std::to_string(layer % layers_per_stage_) + name.substr(dot)};
    }
    const bool head_copy = name.ends_with("word_embeddings.weight") && name.find(".embedding.") == std::string::npos;
    if (head_copy || name.find("encoder.final_layernorm.") != std::string::npos ||
        name.find("output_layer.") != std::string::npos) {
      return {pp_ - 1, name};
    }
    return {0, name};
  }

  // The fused QKV rows in the (head, {q,k,v}, dim) order the model reads, from megatron_legacy's
  // ({q,k,v}, head, dim) order within each TP shard. The slice must cover whole heads.
  at::Tensor read_parts_first_qkv(const Located& at, const std::vector<int64_t>& shape, const TensorSlice& slice,
                                  at::ScalarType dtype) const {
    const int64_t head_rows = 3 * head_dim_, heads_per_shard = heads_ / tp_;
    const int64_t length = slice.length < 0 ? shape[0] - slice.start : slice.length;
    RANKSERVE_CHECK(slice.dim == 0 && slice.start % head_rows == 0 && length % head_rows == 0, "a QKV slice of whole heads");
    std::vector<int64_t> shard_shape = shape;
    shard_shape[0] /= tp_;
    std::vector<at::Tensor> rows;
    for (int64_t head = slice.start / head_rows; head < (slice.start + length) / head_rows; ++head) {
      const int j = static_cast<int>(head / heads_per_shard);
      const int64_t local = head % heads_per_shard;
      for (int64_t part = 0; part < 3; ++part) {
        rows.push_back(
            checked(j, at, shard_shape).read(at.name, {0, (part * heads_per_shard + local) * head_dim_, head_dim_}, dtype));
      }
    }
    return at::cat(rows, 0);
  }

  // Each rank opens only the shard files its slices come from.
  const MappedCheckpoint& shard(int j, int stage) const {
    auto& slot = shards_[static_cast<size_t>(stage * tp_ + j)];
    if (!slot) {
      const std::string name = pp_ > 1   ? fmt::format("tp_rank_{:02d}_pp_rank_{:03d}/model_weights.ckpt", j, stage)
                               : tp_ > 1 ? fmt::format("mp_rank_{:02d}/model_weights.ckpt", j)
                                         : "model_weights.ckpt";
      if (!files_.exists(name)) {
        throw Error(ErrorCode::load,
                    fmt::format("load: {}: missing (the config says TP {} PP {})", files_.display(name), tp_, pp_));
      }
      slot = std::make_unique<MappedCheckpoint>(files_.open_checkpoint(name));
    }
    return *slot;
  }

  const MappedCheckpoint& checked(int j, const Located& at, const std::vector<int64_t>& shard_shape) const {
    const MappedCheckpoint& s = shard(j, at.stage);
    s.expect(at.name, shard_shape);
    return s;
  }

  NemoFiles files_;
  int tp_, pp_, layers_per_stage_;
  int64_t heads_, head_dim_;
  bool qkv_parts_first_;
  mutable std::vector<std::unique_ptr<MappedCheckpoint>> shards_;  // [stage * tp + tp rank]
};

}  // namespace

bool is_nemo_path(const std::string& path) {
  return fs::is_directory(path) ? fs::exists(fs::path(path) / "model_config.yaml") : fs::is_regular_file(path);
}

ModelConfig read_nemo_config(const std::string& path) {
  const NemoFiles files(path);
  const std::string yaml = files.read_text("model_config.yaml");
  if (files.has_prefix("model_weights/")) {
    throw Error(ErrorCode::load, fmt::format("load: {}: a distributed (mcore) checkpoint; only the legacy layout "
                                             "(model_weights.ckpt) is supported",
                                             path));
  }
  return parse_nemo_config(yaml, files.display("model_config.yaml"),
                           [&](const std::string& name) { return count_vocab(files, name); });
}

NemoTokenizerTexts read_nemo_tokenizer(const std::string& path) {
  const NemoFiles files(path);
  const NemoTokenizerFiles names = nemo_tokenizer_files(files.read_text("model_config.yaml"), files.display("model_config.yaml"));
  return {files.read_text(names.vocab), files.display(names.vocab), files.read_text(names.merges), files.display(names.merges)};
}

std::unique_ptr<WeightSource> open_nemo_source(const std::string& path, const ModelConfig& config) {
  return std::make_unique<NemoSource>(path, config);
}

}  // namespace rankserve::runtime
