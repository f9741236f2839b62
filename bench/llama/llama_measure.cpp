// llama.cpp's side of bench/llama_bench.sh: one measure (bench/llama/measure.h) of a GGUF model through
// llama.h, printed as a result line; rankserve's side is bench/engine_measure.cpp. Compiled by the
// script with g++ against npm's prebuilt libllama (bench/llama/package.json), never by CMake.
// Usage: llama_measure BINS_DIR MODEL.gguf f32|f16|bf16 decode:BATCH:THREADS:NEW_TOKENS|prefill:TOKENS:THREADS [--info]
// BINS_DIR holds libggml-cpu-*.so: ggml loads the variant that scores best on this CPU (zen4, skylakex, ...).
// The KV cache holds the weights' type (rankserve's is in its compute dtype). Greedy: the first
// highest logit; EOS does not stop a sequence.
#include <ggml-backend.h>
#include <llama.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/llama/measure.h"

namespace bench = rankserve::bench;

namespace {

// llama.cpp's log: warnings and errors only (a continued line keeps its first line's level).
void log_warnings(ggml_log_level level, const char* text, void* last_level) {
  auto& last = *static_cast<ggml_log_level*>(last_level);
  if (level != GGML_LOG_LEVEL_CONT) last = level;
  if (last >= GGML_LOG_LEVEL_WARN) std::fputs(text, stderr);
}

ggml_type kv_type_of(const std::string& dtype) {
  if (dtype == "f32") return GGML_TYPE_F32;
  if (dtype == "f16") return GGML_TYPE_F16;
  if (dtype == "bf16") return GGML_TYPE_BF16;
  throw std::invalid_argument("dtype '" + dtype + "' is not f32, f16 or bf16");
}

// The ggml CPU backend libraries this process mapped (the variant ggml chose), from /proc/self/maps.
std::string mapped_cpu_backends() {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> found;
  for (std::string line; std::getline(maps, line);) {
    const size_t at = line.find("libggml-cpu");
    if (at != std::string::npos) found.insert(line.substr(at));
  }
  std::string out;
  for (const std::string& name : found) out += (out.empty() ? "" : " ") + name;
  return out.empty() ? "none" : out;
}

// The registered backends and the CPU backend's features ("AVX512_BF16 = 1" ...).
void print_backends() {
  for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
    ggml_backend_reg_t reg = ggml_backend_reg_get(i);
    std::printf("llama.cpp backend: %s", ggml_backend_reg_name(reg));
    auto features =
        reinterpret_cast<ggml_backend_get_features_t>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features"));
    if (features != nullptr) {
      for (ggml_backend_feature* f = features(reg); f->name != nullptr; ++f) std::printf(" %s=%s", f->name, f->value);
    }
    std::printf("\n");
  }
  std::printf("llama.cpp cpu library: %s\nllama.cpp system info: %s\nllama.cpp ggml version: %s (commit %s)\n",
              mapped_cpu_backends().c_str(), llama_print_system_info(), ggml_version(), ggml_commit());
}

class LlamaRunner {
 public:
  LlamaRunner(const std::string& model_path, const std::string& dtype, const bench::Measure& m) {
    llama_model_params model_params = llama_model_default_params();
    model_params.n_gpu_layers = 0;
    model_ = llama_model_load_from_file(model_path.c_str(), model_params);
    if (model_ == nullptr) throw std::runtime_error("llama.cpp could not load " + model_path);
    const int per_sequence = (m.kind == "prefill" ? m.prompt_tokens : 8) + m.new_tokens + 2;
    llama_context_params params = llama_context_default_params();
    params.n_seq_max = static_cast<uint32_t>(m.batch);
    params.n_ctx = static_cast<uint32_t>(m.batch * ((per_sequence + 255) / 256 * 256));
    params.n_batch = params.n_ubatch = static_cast<uint32_t>(std::max(512, m.batch * 8));
    params.n_threads = params.n_threads_batch = m.threads;
    params.type_k = params.type_v = kv_type_of(dtype);
    params.kv_unified = false;  // each sequence attends over its own cells (llama.h's advice for unrelated prompts)
    params.no_perf = true;
    context_ = llama_init_from_model(model_, params);
    if (context_ == nullptr) throw std::runtime_error("llama.cpp could not create a context for " + model_path);
    vocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model_));
  }
  LlamaRunner(const LlamaRunner&) = delete;
  LlamaRunner& operator=(const LlamaRunner&) = delete;
  ~LlamaRunner() {
    llama_free(context_);
    llama_model_free(model_);
  }

  // Greedy generation of `max_new_tokens` per prompt, all prompts as one batch (as Engine::generate).
  std::vector<bench::TokenIds> generate(const std::vector<bench::TokenIds>& prompts, int max_new_tokens) {
    llama_memory_clear(llama_get_memory(context_), true);
    size_t total = 0;
    for (const bench::TokenIds& p : prompts) total += p.size();
    llama_batch batch = llama_batch_init(static_cast<int32_t>(std::max(total, prompts.size())), 0, 1);
    std::vector<bench::TokenIds> ids(prompts.size());
    std::vector<int32_t> rows;  // each sequence's output row in the batch
    for (size_t s = 0; s < prompts.size(); ++s) {
      for (size_t i = 0; i < prompts[s].size(); ++i)
        add(batch, prompts[s][i], static_cast<int32_t>(i), s, i + 1 == prompts[s].size());
      rows.push_back(batch.n_tokens - 1);
    }
    for (int step = 0; step < max_new_tokens; ++step) {
      if (step > 0) {
        batch.n_tokens = 0;
        rows.clear();
        for (size_t s = 0; s < prompts.size(); ++s) {
          add(batch, ids[s].back(), static_cast<int32_t>(prompts[s].size() + ids[s].size() - 1), s, true);
          rows.push_back(batch.n_tokens - 1);
        }
      }
      const int32_t rc = llama_decode(context_, batch);
      if (rc != 0) {
        llama_batch_free(batch);
        throw std::runtime_error("llama_decode returned " + std::to_string(rc));
      }
      for (size_t s = 0; s < prompts.size(); ++s) ids[s].push_back(argmax(llama_get_logits_ith(context_, rows[s])));
    }
    llama_batch_free(batch);
    return ids;
  }

 private:
  static void add(llama_batch& batch, int32_t token, int32_t pos, size_t seq, bool output) {
    const int32_t i = batch.n_tokens++;
    batch.token[i] = token;
    batch.pos[i] = pos;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = static_cast<llama_seq_id>(seq);
    batch.logits[i] = output ? 1 : 0;
  }
  int32_t argmax(const float* logits) const {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab_; ++i) best = logits[i] > logits[best] ? i : best;
    return best;
  }

  llama_model* model_ = nullptr;
  llama_context* context_ = nullptr;
  int32_t vocab_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && !(argc == 6 && std::string(argv[5]) == "--info")) {
    std::fprintf(stderr,
                 "usage: llama_measure BINS_DIR MODEL.gguf f32|f16|bf16 decode:BATCH:THREADS:NEW_TOKENS|prefill:TOKENS:THREADS "
                 "[--info]\n");
    return 2;
  }
  ggml_log_level last_level = GGML_LOG_LEVEL_INFO;
  llama_log_set(log_warnings, &last_level);
  try {
    const bench::Measure measure = bench::parse_measure(argv[4]);
    ggml_backend_load_all_from_path(argv[1]);
    llama_backend_init();
    LlamaRunner runner(argv[2], argv[3], measure);
    if (argc == 6) print_backends();
    auto generate = [&](const std::vector<bench::TokenIds>& prompts, int max_new_tokens) {
      return runner.generate(prompts, max_new_tokens);
    };
    bench::print_result("llama.cpp", argv[3], argv[4], bench::run_measure(measure, generate));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_measure: %s\n", e.what());
    llama_backend_free();
    return 1;
  }
  llama_backend_free();
  return 0;
}
