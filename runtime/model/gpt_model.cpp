#include "runtime/model/gpt_model.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "runtime/core/error.h"
#include "runtime/core/log.h"
#include "runtime/model/cpu_kernels.h"

namespace rankserve::runtime {
namespace {

constexpr int kVocabMultiple = 128;  // padded vocabulary rows per TP rank are a multiple of this (as Megatron)

// Which tensors to read and how to slice them: one per family's naming.
struct Loader {
  const ModelConfig& c;
  const WeightSource& source;
  ShardSpec shard;
  at::ScalarType dtype = at::kFloat;
  uint64_t bytes = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_report = start;

  int64_t local_width() const { return c.hidden_size / shard.tp_size; }   // this rank's heads x head_dim
  int64_t local_ffn() const { return c.ffn_hidden_size / shard.tp_size; }

  at::Tensor read(const std::string& name, std::vector<int64_t> shape, TensorSlice slice = {0, 0, -1}, Init init = Init::normal) {
    at::Tensor t = source.read(name, shape, slice, dtype, init);
    bytes += static_cast<uint64_t>(t.numel()) * t.element_size();
    return t;
  }
  at::Tensor vector(const std::string& name, int64_t size, Init init = Init::zeros) { return read(name, {size}, {0, 0, -1}, init); }
  at::Tensor vector_part(const std::string& name, int64_t size, int64_t start, int64_t length) {
    return read(name, {size}, {0, start, length}, Init::zeros);
  }

  // Rows [start, start + rows) of a [vocab, dim] embedding; rows at or past `usable` (default: all
  // of the checkpoint's) are left zero, so a checkpoint's own padding never leaks into the logits.
  at::Tensor vocab_rows(const std::string& name, int64_t vocab, int64_t dim, int64_t start, int64_t rows, int64_t usable = -1) {
    at::Tensor out = at::zeros({rows, dim}, at::TensorOptions().dtype(dtype));
    const int64_t real = std::max<int64_t>(0, std::min((usable < 0 ? vocab : std::min(usable, vocab)) - start, rows));
    if (real > 0) out.narrow(0, 0, real).copy_(read(name, {vocab, dim}, {0, start, real}));
    return out;
  }
};

LayerWeights load_gpt2_layer(Loader& l, const std::string& p) {
  const int64_t H = l.c.hidden_size, F = l.c.ffn_hidden_size, w = l.local_width(), f = l.local_ffn();
  const int64_t r = l.shard.tp_rank;
  LayerWeights x;
  x.ln1_w = l.vector(p + "ln_1.weight", H, Init::ones);
  x.ln1_b = l.vector(p + "ln_1.bias", H);
  // Conv1D weights are [in, out]; c_attn's output is q | k | v, each split by heads.
  std::vector<at::Tensor> qkv_w, qkv_b;
  for (int64_t part = 0; part < 3; ++part) {
    qkv_w.push_back(l.read(p + "attn.c_attn.weight", {H, 3 * H}, {1, part * H + r * w, w}));
    qkv_b.push_back(l.vector_part(p + "attn.c_attn.bias", 3 * H, part * H + r * w, w));
  }
  x.qkv_w = at::cat(qkv_w, 1).t().contiguous();
  x.qkv_b = at::cat(qkv_b, 0);
  x.out_w = l.read(p + "attn.c_proj.weight", {H, H}, {0, r * w, w}).t().contiguous();
  x.out_b = l.vector(p + "attn.c_proj.bias", H);
  x.ln2_w = l.vector(p + "ln_2.weight", H, Init::ones);
  x.ln2_b = l.vector(p + "ln_2.bias", H);
  x.fc1_w = l.read(p + "mlp.c_fc.weight", {H, F}, {1, r * f, f}).t().contiguous();
  x.fc1_b = l.vector_part(p + "mlp.c_fc.bias", F, r * f, f);
  x.fc2_w = l.read(p + "mlp.c_proj.weight", {F, H}, {0, r * f, f}).t().contiguous();
  x.fc2_b = l.vector(p + "mlp.c_proj.bias", H);
  return x;
}

LayerWeights load_opt_layer(Loader& l, const std::string& p) {
  const int64_t H = l.c.hidden_size, F = l.c.ffn_hidden_size, w = l.local_width(), f = l.local_ffn();
  const int64_t r = l.shard.tp_rank;
  LayerWeights x;
  x.ln1_w = l.vector(p + "self_attn_layer_norm.weight", H, Init::ones);
  x.ln1_b = l.vector(p + "self_attn_layer_norm.bias", H);
  std::vector<at::Tensor> qkv_w, qkv_b;
  for (const char* part : {"q_proj", "k_proj", "v_proj"}) {
    qkv_w.push_back(l.read(p + "self_attn." + part + ".weight", {H, H}, {0, r * w, w}));
    qkv_b.push_back(l.vector_part(p + "self_attn." + part + ".bias", H, r * w, w));
  }
  x.qkv_w = at::cat(qkv_w, 0);
  x.qkv_b = at::cat(qkv_b, 0);
  x.out_w = l.read(p + "self_attn.out_proj.weight", {H, H}, {1, r * w, w});
  x.out_b = l.vector(p + "self_attn.out_proj.bias", H);
  x.ln2_w = l.vector(p + "final_layer_norm.weight", H, Init::ones);
  x.ln2_b = l.vector(p + "final_layer_norm.bias", H);
  x.fc1_w = l.read(p + "fc1.weight", {F, H}, {0, r * f, f});
  x.fc1_b = l.vector_part(p + "fc1.bias", F, r * f, f);
  x.fc2_w = l.read(p + "fc2.weight", {H, F}, {1, r * f, f});
  x.fc2_b = l.vector(p + "fc2.bias", H);
  return x;
}

// Every few seconds of loading: bytes so far and the rate (every rank logs; info shows rank 0's).
void report_progress(Loader& l, int layer) {
  const auto now = std::chrono::steady_clock::now();
  if (now - l.last_report < std::chrono::seconds(2)) return;
  l.last_report = now;
  const double seconds = std::chrono::duration<double>(now - l.start).count();
  log::info("loading: layer {}/{}, {:.1f} MB of this rank's shard, {:.2f} GB/s", layer + 1, l.c.num_layers, l.bytes / 1e6,
            l.bytes / 1e9 / seconds);
}

// NeMo (legacy Megatron) layer: Linear weights [out, in]; the fused QKV rows are (head, q/k/v, dim).
LayerWeights load_nemo_layer(Loader& l, const std::string& p) {
  const int64_t H = l.c.hidden_size, F = l.c.ffn_hidden_size, w = l.local_width(), f = l.local_ffn();
  const int64_t r = l.shard.tp_rank, d = l.c.head_dim(), heads = w / d;
  LayerWeights x;
  x.ln1_w = l.vector(p + "input_layernorm.weight", H, Init::ones);
  x.ln1_b = l.vector(p + "input_layernorm.bias", H);
  // This rank's heads are consecutive rows; regroup them as q | k | v like the other families.
  x.qkv_w = l.read(p + "self_attention.query_key_value.weight", {3 * H, H}, {0, r * 3 * w, 3 * w})
                .reshape({heads, 3, d, H}).permute({1, 0, 2, 3}).reshape({3 * w, H}).contiguous();
  x.qkv_b = l.vector_part(p + "self_attention.query_key_value.bias", 3 * H, r * 3 * w, 3 * w)
                .reshape({heads, 3, d}).permute({1, 0, 2}).reshape({3 * w}).contiguous();
  x.out_w = l.read(p + "self_attention.dense.weight", {H, H}, {1, r * w, w});
  x.out_b = l.vector(p + "self_attention.dense.bias", H);
  x.ln2_w = l.vector(p + "post_attention_layernorm.weight", H, Init::ones);
  x.ln2_b = l.vector(p + "post_attention_layernorm.bias", H);
  x.fc1_w = l.read(p + "mlp.dense_h_to_4h.weight", {F, H}, {0, r * f, f});
  x.fc1_b = l.vector_part(p + "mlp.dense_h_to_4h.bias", F, r * f, f);
  x.fc2_w = l.read(p + "mlp.dense_4h_to_h.weight", {H, F}, {1, r * f, f});
  x.fc2_b = l.vector(p + "mlp.dense_4h_to_h.bias", H);
  return x;
}

// x [n, in] times w [out, in]^T (+ b). BLAS gemm would first copy (pack) the whole weight matrix, which
// costs as much as the product at decode's few rows: cpu_project streams it once instead, and a
// matrix-vector product does for one row otherwise. cpu_project runs on the intra-op threads: with
// only one, BLAS (OpenBLAS runs its own pool) has more cores and wins.
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {}) {
  if (at::get_num_threads() > 1 && cpu_project_applies(x, w)) return cpu_project(x, w, b);
  if (x.size(0) != 1) return at::linear(x, w, b);
  at::Tensor row = x.squeeze(0);
  return (b.defined() ? at::addmv(b, w, row) : at::mv(w, row)).unsqueeze(0);
}

at::Tensor activate(const at::Tensor& x, Activation a) {
  switch (a) {
    case Activation::gelu_tanh: return at::gelu(x, "tanh");
    case Activation::gelu_erf: return at::gelu(x);
    case Activation::relu: return at::relu(x);
  }
  return x;
}

}  // namespace

GptModel::GptModel(const ModelConfig& config, const WeightSource& source, ShardSpec shard, Communicator& tp,
                   Communicator& pp)
    : config_(config), shard_(shard), tp_(tp), pp_(pp) {
  const ModelConfig& c = config_;
  if (c.num_attention_heads % shard.tp_size != 0 || c.ffn_hidden_size % shard.tp_size != 0) {
    throw Error(ErrorCode::usage, fmt::format("options: --tp {} does not divide the model's {} attention heads and ffn "
                                              "size {} (choose a divisor)", shard.tp_size, c.num_attention_heads,
                                              c.ffn_hidden_size));
  }
  if (c.num_layers < shard.pp_size) {
    throw Error(ErrorCode::usage, fmt::format("options: --pp {} exceeds the model's {} layers", shard.pp_size, c.num_layers));
  }
  local_heads_ = c.num_attention_heads / shard.tp_size;
  // Stage s holds layers [first, first + count): the first (num_layers % pp) stages take one more.
  const int base = c.num_layers / shard.pp_size, extra = c.num_layers % shard.pp_size;
  first_layer_ = shard.pp_rank * base + std::min(shard.pp_rank, extra);
  const int num_local_layers = base + (shard.pp_rank < extra ? 1 : 0);
  const bool first_stage = shard.pp_rank == 0, last_stage = is_last_stage();
  const int multiple = kVocabMultiple * shard.tp_size;
  padded_vocab_ = (c.vocab_size + multiple - 1) / multiple * multiple;
  const int64_t rows = padded_vocab_ / shard.tp_size;
  Loader l{c, source, shard, shard.dtype};
  const int64_t H = c.hidden_size, E = c.embed_dim(), P = c.max_position_embeddings + c.position_offset;
  if (c.family == ModelFamily::gpt2) {
    const std::string p = source.contains("transformer.wte.weight") ? "transformer." : "";
    // The output layer is tied to the word embeddings: the first and the last stage hold them.
    if (first_stage || last_stage) word_embeddings_ = l.vocab_rows(p + "wte.weight", c.vocab_size, H, shard.tp_rank * rows, rows);
    if (first_stage) position_embeddings_ = l.read(p + "wpe.weight", {P, H});
    for (int i = first_layer_; i < first_layer_ + num_local_layers; ++i) {
      layers_.push_back(load_gpt2_layer(l, fmt::format("{}h.{}.", p, i)));
      report_progress(l, i);
    }
    if (last_stage) {
      ln_f_w_ = l.vector(p + "ln_f.weight", H, Init::ones);
      ln_f_b_ = l.vector(p + "ln_f.bias", H);
    }
  } else if (c.family == ModelFamily::opt) {
    const std::string p = source.contains("decoder.embed_tokens.weight") ? "decoder." : "model.decoder.";
    if (first_stage || last_stage) {
      word_embeddings_ = l.vocab_rows(p + "embed_tokens.weight", c.vocab_size, E, shard.tp_rank * rows, rows);
    }
    if (first_stage) position_embeddings_ = l.read(p + "embed_positions.weight", {P, H});
    if (E != H && first_stage) project_in_ = l.read(p + "project_in.weight", {H, E});
    if (E != H && last_stage) project_out_ = l.read(p + "project_out.weight", {E, H});
    for (int i = first_layer_; i < first_layer_ + num_local_layers; ++i) {
      layers_.push_back(load_opt_layer(l, fmt::format("{}layers.{}.", p, i)));
      report_progress(l, i);
    }
    if (c.pre_layer_norm && last_stage) {
      ln_f_w_ = l.vector(p + "final_layer_norm.weight", H, Init::ones);
      ln_f_b_ = l.vector(p + "final_layer_norm.bias", H);
    }
  } else {
    const std::string p = source.contains("model.module.language_model.embedding.word_embeddings.weight")
                              ? "model.module.language_model."
                              : "model.language_model.";
    const int64_t V = c.checkpoint_vocab_rows;
    if (first_stage || (last_stage && c.tied_output)) {
      word_embeddings_ = l.vocab_rows(p + "embedding.word_embeddings.weight", V, H, shard.tp_rank * rows, rows, c.vocab_size);
    }
    if (last_stage && !c.tied_output) {
      output_weights_ = l.vocab_rows(p + "output_layer.weight", V, H, shard.tp_rank * rows, rows, c.vocab_size);
    }
    if (first_stage) position_embeddings_ = l.read(p + "embedding.position_embeddings.weight", {P, H});
    for (int i = first_layer_; i < first_layer_ + num_local_layers; ++i) {
      layers_.push_back(load_nemo_layer(l, fmt::format("{}encoder.layers.{}.", p, i)));
      report_progress(l, i);
    }
    if (last_stage) {
      ln_f_w_ = l.vector(p + "encoder.final_layernorm.weight", H, Init::ones);
      ln_f_b_ = l.vector(p + "encoder.final_layernorm.bias", H);
    }
  }
  weight_bytes_ = l.bytes;
}

uint64_t GptModel::kv_cache_bytes_per_token() const {
  return 2 * layers_.size() * static_cast<uint64_t>(local_heads_) * config_.head_dim() * at::elementSize(shard_.dtype);
}

KvCache GptModel::new_cache(int64_t max_tokens) const {
  KvCache cache;
  for (size_t i = 0; i < std::max<size_t>(layers_.size(), 1); ++i) {
    cache.k.push_back(at::empty({max_tokens, local_heads_, config_.head_dim()}, shard_.dtype));
    cache.v.push_back(at::empty({max_tokens, local_heads_, config_.head_dim()}, shard_.dtype));
  }
  return cache;
}

at::Tensor GptModel::all_reduce(at::Tensor x) {
  if (shard_.tp_size == 1) return x;
  // The communicators sum float32: a half-precision activation is summed in float32 and converted back.
  at::Tensor sum = x.to(at::kFloat).contiguous();
  tp_.all_reduce_sum(std::span<float>(sum.data_ptr<float>(), static_cast<size_t>(sum.numel())));
  return sum.to(x.scalar_type());
}

at::Tensor GptModel::embed(std::span<const SequenceStep> batch, int64_t num_tokens) {
  std::vector<int64_t> tokens, positions;
  tokens.reserve(static_cast<size_t>(num_tokens));
  positions.reserve(static_cast<size_t>(num_tokens));
  for (const SequenceStep& s : batch) {
    for (size_t i = 0; i < s.ids.size(); ++i) {
      tokens.push_back(s.ids[i]);
      positions.push_back(s.cache->length + static_cast<int64_t>(i) + config_.position_offset);
    }
  }
  const int64_t rows = word_embeddings_.size(0), start = shard_.tp_rank * rows;
  at::Tensor local = at::tensor(tokens, at::kLong).sub(start);
  at::Tensor mine = local.ge(0).logical_and(local.lt(rows));
  at::Tensor x = at::embedding(word_embeddings_, local.clamp(0, rows - 1)).mul(mine.unsqueeze(1).to(word_embeddings_.scalar_type()));
  x = all_reduce(x);
  if (project_in_.defined()) x = project(x, project_in_);
  return x.add(at::embedding(position_embeddings_, at::tensor(positions, at::kLong)));
}

at::Tensor GptModel::attention(const LayerWeights& w, const at::Tensor& x, std::span<const SequenceStep> batch, size_t layer) {
  const int64_t width = local_heads_ * config_.head_dim();
  at::Tensor qkv = project(x, w.qkv_w, w.qkv_b).contiguous();  // [tokens, q | k | v of this rank's heads]
  at::Tensor context = at::empty({qkv.size(0), width}, qkv.options());
  // Sequences that run one token go through one call of the decode kernel; the others one by one.
  std::vector<DecodeAttentionItem> decoding;
  int64_t offset = 0;
  for (const SequenceStep& s : batch) {
    const int64_t n = static_cast<int64_t>(s.ids.size());
    at::Tensor& k_cache = s.cache->k[layer];
    if (n == 1 && decode_attention_applies(qkv, k_cache)) {
      decoding.push_back({offset, s.cache->length, &k_cache, &s.cache->v[layer]});
    } else {
      context.narrow(0, offset, n).copy_(attend(qkv.narrow(0, offset, n), *s.cache, layer));
    }
    offset += n;
  }
  if (!decoding.empty()) decode_attention(qkv, decoding, local_heads_, config_.head_dim(), context);
  return all_reduce(project(context, w.out_w)).add(w.out_b);
}

at::Tensor GptModel::attend(const at::Tensor& qkv, KvCache& cache, size_t layer) {
  const int64_t d = config_.head_dim(), n = qkv.size(0), past = cache.length, total = past + n;
  auto parts = qkv.chunk(3, -1);
  at::Tensor& k_cache = cache.k[layer];
  at::Tensor& v_cache = cache.v[layer];
  at::Tensor q = parts[0].reshape({n, local_heads_, d}).transpose(0, 1);  // [heads, n, d]
  k_cache.narrow(0, past, n).copy_(parts[1].reshape({n, local_heads_, d}));
  v_cache.narrow(0, past, n).copy_(parts[2].reshape({n, local_heads_, d}));
  at::Tensor k = k_cache.narrow(0, 0, total).permute({1, 2, 0});  // [heads, d, total]
  at::Tensor v = v_cache.narrow(0, 0, total).transpose(0, 1);     // [heads, total, d]
  at::Tensor scores = at::matmul(q, k).mul(1.0 / std::sqrt(static_cast<double>(d)));
  if (n > 1) {  // causal: query i (position past + i) sees keys up to past + i
    at::Tensor future = at::arange(total, at::kLong).unsqueeze(0).gt(at::arange(past, total, at::kLong).unsqueeze(1));
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  }
  return at::matmul(at::softmax(scores, -1), v).transpose(0, 1).reshape({n, local_heads_ * d});
}

at::Tensor GptModel::mlp(const LayerWeights& w, const at::Tensor& x) {
  at::Tensor h = activate(project(x, w.fc1_w, w.fc1_b), config_.activation);
  return all_reduce(project(h, w.fc2_w)).add(w.fc2_b);
}

at::Tensor GptModel::logits(const at::Tensor& hidden) {
  const at::Tensor& output = output_weights_.defined() ? output_weights_ : word_embeddings_;
  at::Tensor local = project(hidden, output).to(at::kFloat).contiguous();  // [n, rows], float32 for sampling
  if (shard_.tp_size == 1) return local.narrow(1, 0, config_.vocab_size);
  at::Tensor gathered = at::empty({shard_.tp_size, local.size(0), local.size(1)}, at::kFloat);
  tp_.all_gather(std::span<const float>(local.data_ptr<float>(), static_cast<size_t>(local.numel())),
                 std::span<float>(gathered.data_ptr<float>(), static_cast<size_t>(gathered.numel())));
  return gathered.permute({1, 0, 2}).reshape({local.size(0), -1}).narrow(1, 0, config_.vocab_size);
}

at::Tensor GptModel::run_layers(at::Tensor x, std::span<const SequenceStep> batch) {
  const double eps = config_.layernorm_epsilon;
  const int64_t H = config_.hidden_size;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerWeights& w = layers_[i];
    if (config_.pre_layer_norm) {
      x = x.add(attention(w, at::layer_norm(x, {H}, w.ln1_w, w.ln1_b, eps), batch, i));
      x = x.add(mlp(w, at::layer_norm(x, {H}, w.ln2_w, w.ln2_b, eps)));
    } else {  // OPT-350m: layer norm after each residual add
      x = at::layer_norm(x.add(attention(w, x, batch, i)), {H}, w.ln1_w, w.ln1_b, eps);
      x = at::layer_norm(x.add(mlp(w, x)), {H}, w.ln2_w, w.ln2_b, eps);
    }
  }
  return x;
}

at::Tensor GptModel::forward(std::span<const SequenceStep> batch) {
  int64_t num_tokens = 0;
  std::vector<int64_t> last_rows;
  for (const SequenceStep& s : batch) {
    const int64_t n = static_cast<int64_t>(s.ids.size());
    RANKSERVE_CHECK(n > 0 && s.cache != nullptr, "empty sequence step");
    if (s.cache->k.empty() || s.cache->length + n > s.cache->k[0].size(0)) {
      throw Error(ErrorCode::usage, fmt::format("generate: {} tokens exceed the cache of {} tokens", s.cache->length + n,
                                                s.cache->k.empty() ? 0 : s.cache->k[0].size(0)));
    }
    num_tokens += n;
    last_rows.push_back(num_tokens - 1);
  }
  at::Tensor x = shard_.pp_rank == 0 ? embed(batch, num_tokens) : at::empty({num_tokens, config_.hidden_size}, shard_.dtype);
  // Stage s runs its layers, then hands the activations to stage s + 1 (a broadcast over the PP group).
  for (int stage = 0; stage < shard_.pp_size; ++stage) {
    if (stage == shard_.pp_rank) x = run_layers(x, batch).contiguous();
    if (stage + 1 < shard_.pp_size) {
      pp_.broadcast(std::span<std::byte>(static_cast<std::byte*>(x.data_ptr()), x.nbytes()), stage);
    }
  }
  for (const SequenceStep& s : batch) s.cache->length += static_cast<int64_t>(s.ids.size());
  if (!is_last_stage()) return {};
  x = x.index_select(0, at::tensor(last_rows, at::kLong));
  if (ln_f_w_.defined()) x = at::layer_norm(x, {config_.hidden_size}, ln_f_w_, ln_f_b_, config_.layernorm_epsilon);
  if (project_out_.defined()) x = project(x, project_out_);
  return logits(x);
}

}  // namespace rankserve::runtime
