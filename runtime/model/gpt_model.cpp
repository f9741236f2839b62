#include "runtime/model/gpt_model.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "runtime/model/cpu_kernels.h"
#include "runtime/model/device_upload.h"

namespace rankserve::runtime {
namespace {

constexpr int kVocabMultiple = 128;  // padded vocabulary rows per TP rank are a multiple of this (as Megatron)

// Which tensors to read and how to slice them: one per family's naming.
struct Loader {
  const ModelConfig& c;
  const WeightSource& source;
  ShardSpec shard;
  at::ScalarType dtype = at::kFloat;
  DeviceUpload upload;                       // each slice goes to the device as it is read: the host holds one slice at a time
  at::ScalarType vector_dtype = at::kFloat;  // of layer norms, biases and position embeddings: the activations'
  uint64_t bytes = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_report = start;

  int64_t local_width() const { return c.attention_width() / shard.tp_size; }  // this rank's heads x head_dim
  int64_t local_ffn() const { return c.ffn_hidden_size / shard.tp_size; }

  at::Tensor read(const std::string& name, std::vector<int64_t> shape, TensorSlice slice = {0, 0, -1}, Init init = Init::normal,
                  std::optional<at::ScalarType> type = std::nullopt) {
    at::Tensor t = upload.to_device(source.read(name, shape, slice, type.value_or(dtype), init));
    bytes += static_cast<uint64_t>(t.numel()) * t.element_size();
    return t;
  }
  at::Tensor vector(const std::string& name, int64_t size, Init init = Init::zeros) {
    return read(name, {size}, {0, 0, -1}, init, vector_dtype);
  }
  at::Tensor vector_part(const std::string& name, int64_t size, int64_t start, int64_t length) {
    return read(name, {size}, {0, start, length}, Init::zeros, vector_dtype);
  }

  // Rows [start, start + rows) of a [vocab, dim] embedding; rows at or past `usable` (default: all
  // of the checkpoint's) are left zero, so a checkpoint's own padding never leaks into the logits.
  at::Tensor vocab_rows(const std::string& name, int64_t vocab, int64_t dim, int64_t start, int64_t rows, int64_t usable = -1) {
    at::Tensor out = at::zeros({rows, dim}, at::TensorOptions().dtype(dtype).device(shard.device));
    const int64_t real = std::max<int64_t>(0, std::min((usable < 0 ? vocab : std::min(usable, vocab)) - start, rows));
    if (real > 0) out.narrow(0, 0, real).copy_(read(name, {vocab, dim}, {0, start, real}));
    bytes += static_cast<uint64_t>((rows - real) * dim) * out.element_size();  // the zero rows take memory too
    return out;
  }
};

// How a family names and lays out its tensors. Linear weights are [out, in] (torch.nn.Linear) or
// [in, out] (GPT-2's Conv1D); QKV comes as three tensors, or fused: q | k | v along the output
// (GPT-2), or per head (NeMo: (head, {q,k,v}, dim) rows).
enum class Qkv { separate, fused_parts, fused_heads };

struct LayerLayout {
  std::string norm1, norm2;  // layer norms ("<name>.weight" / ".bias")
  Qkv qkv;
  std::vector<std::string> qkv_names;  // q, k, v; or the fused one
  std::string out, fc1, fc2;           // attention output, MLP in and out ("<name>.weight" / ".bias")
  bool conv1d = false;
};

struct ModelLayout {
  std::string word_embeddings, position_embeddings, project_in, project_out, final_norm, output_layer;
  std::string head_embeddings;  // a pipeline's last stage's copy of tied word embeddings (NeMo), if any
  std::string layers;           // prefix of layer i: fmt::format(layers, i)
  LayerLayout layer;
};

// The names in `source` (each family has two prefix variants: the newer and the older file layout).
ModelLayout layout_of(const ModelConfig& c, const WeightSource& source) {
  auto pick = [&](const std::string& a, const std::string& b, const std::string& probe) {
    return source.contains(a + probe) ? a : b;
  };
  if (c.family == ModelFamily::gpt2) {
    const std::string p = pick("transformer.", "", "wte.weight");
    return {p + "wte.weight",
            p + "wpe.weight",
            "",
            "",
            p + "ln_f",
            "",
            "",
            p + "h.{}.",
            {"ln_1", "ln_2", Qkv::fused_parts, {"attn.c_attn"}, "attn.c_proj", "mlp.c_fc", "mlp.c_proj", true}};
  }
  if (c.family == ModelFamily::opt) {
    const std::string p = pick("decoder.", "model.decoder.", "embed_tokens.weight");
    return {p + "embed_tokens.weight",
            p + "embed_positions.weight",
            p + "project_in.weight",
            p + "project_out.weight",
            c.pre_layer_norm ? p + "final_layer_norm" : "",
            "",
            "",
            p + "layers.{}.",
            {"self_attn_layer_norm",
             "final_layer_norm",
             Qkv::separate,
             {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
             "self_attn.out_proj",
             "fc1",
             "fc2"}};
  }
  // NeMo: "model.module." when saved with megatron_amp_O2.
  const std::string m = pick("model.module.", "model.", "language_model.embedding.word_embeddings.weight"),
                    p = m + "language_model.";
  return {p + "embedding.word_embeddings.weight",
          p + "embedding.position_embeddings.weight",
          "",
          "",
          p + "encoder.final_layernorm",
          c.tied_output ? "" : p + "output_layer.weight",
          m + "word_embeddings.weight",
          p + "encoder.layers.{}.",
          {"input_layernorm",
           "post_attention_layernorm",
           Qkv::fused_heads,
           {"self_attention.query_key_value"},
           "self_attention.dense",
           "mlp.dense_h_to_4h",
           "mlp.dense_4h_to_h"}};
}

// A column-parallel linear layer: this rank's `rows` output rows from `start` of [out, in], with bias.
std::pair<at::Tensor, at::Tensor> column_parallel(Loader& l, const std::string& name, bool conv1d, int64_t out, int64_t in,
                                                  int64_t start, int64_t rows) {
  at::Tensor w = conv1d ? l.read(name + ".weight", {in, out}, {1, start, rows}).t().contiguous()
                        : l.read(name + ".weight", {out, in}, {0, start, rows});
  return {w, l.vector_part(name + ".bias", out, start, rows)};
}

// A row-parallel linear layer: this rank's `cols` input columns of [out, in]; the bias is added
// once, after the all-reduce.
std::pair<at::Tensor, at::Tensor> row_parallel(Loader& l, const std::string& name, bool conv1d, int64_t out, int64_t in,
                                               int64_t start, int64_t cols) {
  at::Tensor w = conv1d ? l.read(name + ".weight", {in, out}, {0, start, cols}).t().contiguous()
                        : l.read(name + ".weight", {out, in}, {1, start, cols});
  return {w, l.vector(name + ".bias", out)};
}

// This rank's heads of q, k and v as one [3 x local width, hidden] weight, rows q | k | v.
std::pair<at::Tensor, at::Tensor> qkv_of(Loader& l, const LayerLayout& t, const std::string& p) {
  const int64_t H = l.c.hidden_size, A = l.c.attention_width(), w = l.local_width(), r = l.shard.tp_rank, d = l.c.head_dim();
  std::vector<at::Tensor> weights, biases;
  if (t.qkv == Qkv::fused_heads) {  // this rank's heads are consecutive rows; regroup them as q | k | v
    auto [qkv_w, qkv_b] = column_parallel(l, p + t.qkv_names[0], false, 3 * A, H, r * 3 * w, 3 * w);
    const int64_t heads = w / d;
    return {qkv_w.reshape({heads, 3, d, H}).permute({1, 0, 2, 3}).reshape({3 * w, H}).contiguous(),
            qkv_b.reshape({heads, 3, d}).permute({1, 0, 2}).reshape({3 * w}).contiguous()};
  }
  for (int64_t part = 0; part < 3; ++part) {
    auto [weight, bias] = t.qkv == Qkv::separate
                              ? column_parallel(l, p + t.qkv_names[part], t.conv1d, A, H, r * w, w)
                              : column_parallel(l, p + t.qkv_names[0], t.conv1d, 3 * A, H, part * A + r * w, w);
    weights.push_back(weight);
    biases.push_back(bias);
  }
  return {at::cat(weights, 0), at::cat(biases, 0)};
}

LayerWeights load_layer(Loader& l, const LayerLayout& t, const std::string& p) {
  const int64_t H = l.c.hidden_size, F = l.c.ffn_hidden_size, A = l.c.attention_width(), w = l.local_width(), f = l.local_ffn();
  const int64_t r = l.shard.tp_rank;
  LayerWeights x;
  x.ln1_w = l.vector(p + t.norm1 + ".weight", H, Init::ones);
  x.ln1_b = l.vector(p + t.norm1 + ".bias", H);
  std::tie(x.qkv_w, x.qkv_b) = qkv_of(l, t, p);
  std::tie(x.out_w, x.out_b) = row_parallel(l, p + t.out, t.conv1d, H, A, r * w, w);
  x.ln2_w = l.vector(p + t.norm2 + ".weight", H, Init::ones);
  x.ln2_b = l.vector(p + t.norm2 + ".bias", H);
  std::tie(x.fc1_w, x.fc1_b) = column_parallel(l, p + t.fc1, t.conv1d, F, H, r * f, f);
  std::tie(x.fc2_w, x.fc2_b) = row_parallel(l, p + t.fc2, t.conv1d, H, F, r * f, f);
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

// x [n, in] times w [out, in]^T (+ b). BLAS gemm would first copy (pack) the whole weight matrix, which
// costs as much as the product at decode's few rows: on CPUs with AVX-512, cpu_linear streams it once
// instead where that measured faster (and takes half-precision weights); elsewhere ATen, with a
// matrix-vector product for one row.
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {}) {
  if (cpu_project_applies(x, w)) return cpu_linear(x, w, b);
  const at::Tensor wx = w.to(x.scalar_type());  // fp16 weights against float32 activations: widened
  if (x.size(0) != 1) return x.is_cpu() ? rows_linear(x, wx, b) : at::linear(x, wx, b);  // rows_linear: BLAS is single-threaded
  at::Tensor row = x.squeeze(0);
  return (b.defined() ? at::addmv(b, wx, row) : at::mv(wx, row)).unsqueeze(0);
}

// A tensor's storage for the communicators: its bytes (hand-offs, gathers), or its elements (sums).
Buffer bytes_buffer(const at::Tensor& t) {
  return Buffer{t.data_ptr(), static_cast<size_t>(t.nbytes()), ElementType::byte, !t.is_cpu()};
}
Buffer sum_buffer(const at::Tensor& t) {
  const ElementType type = t.scalar_type() == at::kBFloat16 ? ElementType::bfloat16
                           : t.scalar_type() == at::kHalf   ? ElementType::float16
                                                            : ElementType::float32;
  RANKSERVE_CHECK(t.is_contiguous() && (t.scalar_type() == at::kFloat || type != ElementType::float32), "summable tensor");
  return Buffer{t.data_ptr(), static_cast<size_t>(t.numel()), type, !t.is_cpu()};
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

GptModel::GptModel(const ModelConfig& config, const WeightSource& source, ShardSpec shard, Communicator& tp, Communicator& pp)
    : config_(config), shard_(shard), tp_(tp), pp_(pp) {
  const ModelConfig& c = config_;
  check_shardable(c, shard.tp_size, shard.pp_size);
  local_heads_ = c.num_attention_heads / shard.tp_size;
  // On the CPU the activations (and layer norms, biases, position embeddings) stay float32 with half
  // weights: ATen 1.13's CPU kernels have no fp16 layer norm, softmax or matrix product, and its bf16
  // ones ran a batch-1 decode step slower than float32 (cpu_project reads either half type against
  // float32 rows; the KV cache keeps the compute dtype). On a GPU they are the compute dtype.
  activation_dtype_ = shard.device.is_cpu() ? at::kFloat : shard.dtype;
  const StageLayers stage = stage_layers(c.num_layers, shard.pp_size, shard.pp_rank);
  first_layer_ = stage.first;
  const int num_local_layers = stage.count;
  const bool first_stage = shard.pp_rank == 0, last_stage = is_last_stage();
  const int multiple = kVocabMultiple * shard.tp_size;
  padded_vocab_ = (c.vocab_size + multiple - 1) / multiple * multiple;
  const int64_t rows = padded_vocab_ / shard.tp_size;
  Loader l{c, source, shard, shard.dtype, DeviceUpload(shard.device), activation_dtype_};
  const ModelLayout m = layout_of(c, source);
  const int64_t H = c.hidden_size, E = c.embed_dim(), P = c.max_position_embeddings + c.position_offset;
  // The checkpoint's vocabulary rows (NeMo pads them); rows past the tokenizer's stay zero.
  const int64_t V = c.checkpoint_vocab_rows > 0 ? c.checkpoint_vocab_rows : c.vocab_size, first_row = shard.tp_rank * rows;
  if (first_stage) word_embeddings_ = l.vocab_rows(m.word_embeddings, V, E, first_row, rows, c.vocab_size);
  if (last_stage && !first_stage && c.tied_output) {  // the output layer is the word embeddings
    const bool copy = !m.head_embeddings.empty() && source.contains(m.head_embeddings);
    word_embeddings_ = l.vocab_rows(copy ? m.head_embeddings : m.word_embeddings, V, E, first_row, rows, c.vocab_size);
  }
  if (last_stage && !c.tied_output) output_weights_ = l.vocab_rows(m.output_layer, V, H, first_row, rows, c.vocab_size);
  if (first_stage) position_embeddings_ = l.read(m.position_embeddings, {P, H}, {0, 0, -1}, Init::normal, activation_dtype_);
  if (E != H && first_stage) project_in_ = l.read(m.project_in, {H, E});
  if (E != H && last_stage) project_out_ = l.read(m.project_out, {E, H});
  for (int i = first_layer_; i < first_layer_ + num_local_layers; ++i) {
    layers_.push_back(load_layer(l, m.layer, fmt::format(fmt::runtime(m.layers), i)));
    report_progress(l, i);
  }
  if (last_stage && !m.final_norm.empty()) {
    ln_f_w_ = l.vector(m.final_norm + ".weight", H, Init::ones);
    ln_f_b_ = l.vector(m.final_norm + ".bias", H);
  }
  weight_bytes_ = l.bytes;
}

uint64_t GptModel::kv_cache_bytes_per_token() const {
  return 2 * layers_.size() * static_cast<uint64_t>(local_heads_) * config_.head_dim() * at::elementSize(shard_.dtype);
}

KvCache GptModel::new_cache(int64_t max_tokens) const {
  KvCache cache;
  for (size_t i = 0; i < std::max<size_t>(layers_.size(), 1); ++i) {
    cache.k.push_back(at::empty({max_tokens, local_heads_, config_.head_dim()}, options(shard_.dtype)));
    cache.v.push_back(at::empty({max_tokens, local_heads_, config_.head_dim()}, options(shard_.dtype)));
  }
  return cache;
}

at::Tensor GptModel::all_reduce(at::Tensor x) {
  if (shard_.tp_size == 1) return x;
  if (!x.is_cpu()) {  // NCCL sums the compute dtype (float32, bf16, fp16) in place on the device
    at::Tensor sum = x.contiguous();
    tp_.all_reduce_sum(sum_buffer(sum));
    return sum;
  }
  // Gloo sums float32: a half-precision activation is summed in float32 and converted back.
  at::Tensor sum = x.to(at::kFloat).contiguous();
  tp_.all_reduce_sum(sum_buffer(sum));
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
  at::Tensor local = at::tensor(tokens, options(at::kLong)).sub(start);
  at::Tensor mine = local.ge(0).logical_and(local.lt(rows));
  at::Tensor x = at::embedding(word_embeddings_, local.clamp(0, rows - 1))
                     .to(activation_dtype_)
                     .mul(mine.unsqueeze(1).to(activation_dtype_));
  x = all_reduce(x);
  if (project_in_.defined()) x = project(x, project_in_);
  return x.add(at::embedding(position_embeddings_, at::tensor(positions, options(at::kLong))));
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
  at::Tensor k = k_cache.narrow(0, 0, total).permute({1, 2, 0}).to(q.scalar_type());  // [heads, d, total]
  at::Tensor v = v_cache.narrow(0, 0, total).transpose(0, 1).to(q.scalar_type());     // [heads, total, d]
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor future;  // causal: query i (position past + i) sees keys up to past + i
  if (n > 1)
    future = at::arange(total, options(at::kLong)).unsqueeze(0).gt(at::arange(past, total, options(at::kLong)).unsqueeze(1));
  auto attend_heads = [&](int64_t first, int64_t end) {
    at::Tensor scores = at::matmul(q.narrow(0, first, end - first), k.narrow(0, first, end - first)).mul(scale);
    if (n > 1) scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
    return at::matmul(at::softmax(scores, -1), v.narrow(0, first, end - first));
  };
  at::Tensor context;
  if (q.is_cpu() && n > 1) {  // prefill: heads split over the intra-op threads, whose BLAS calls are single-threaded
    context = at::empty({local_heads_, n, d}, q.options());
    at::parallel_for(0, local_heads_, 1,
                     [&](int64_t first, int64_t end) { context.narrow(0, first, end - first).copy_(attend_heads(first, end)); });
  } else {
    context = attend_heads(0, local_heads_);
  }
  return context.transpose(0, 1).reshape({n, local_heads_ * d});
}

at::Tensor GptModel::mlp(const LayerWeights& w, const at::Tensor& x) {
  at::Tensor h = activate(project(x, w.fc1_w, w.fc1_b), config_.activation);
  return all_reduce(project(h, w.fc2_w)).add(w.fc2_b);
}

at::Tensor GptModel::logits(const at::Tensor& hidden) {
  const at::Tensor& output = output_weights_.defined() ? output_weights_ : word_embeddings_;
  at::Tensor local = project(hidden, output).to(at::kFloat).contiguous();  // [n, rows], float32 for sampling
  if (shard_.tp_size == 1) return local.narrow(1, 0, config_.vocab_size);
  at::Tensor gathered = at::empty({shard_.tp_size, local.size(0), local.size(1)}, options(at::kFloat));
  tp_.all_gather(bytes_buffer(local), bytes_buffer(gathered));
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
  // Stage s receives its input from stage s - 1, runs its layers and sends the result to stage s + 1
  // (the PP group's rank is the stage; on a device the hand-off is device to device).
  at::Tensor x;
  if (shard_.pp_rank == 0) {
    x = embed(batch, num_tokens);
  } else {
    x = at::empty({num_tokens, config_.hidden_size}, options(activation_dtype_));
    pp_.recv(bytes_buffer(x), shard_.pp_rank - 1);
  }
  x = run_layers(x, batch).contiguous();
  if (!is_last_stage()) pp_.send(bytes_buffer(x), shard_.pp_rank + 1);
  for (const SequenceStep& s : batch) s.cache->length += static_cast<int64_t>(s.ids.size());
  if (!is_last_stage()) return {};
  x = x.index_select(0, at::tensor(last_rows, options(at::kLong)));
  if (ln_f_w_.defined()) x = at::layer_norm(x, {config_.hidden_size}, ln_f_w_, ln_f_b_, config_.layernorm_epsilon);
  if (project_out_.defined()) x = project(x, project_out_);
  return logits(x);
}

}  // namespace rankserve::runtime
