#include "commands/model_loading.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "launcher/memory_budget.h"
#include "runtime/dist/devices.h"
#include "runtime/model/nemo_tokenizer.h"
#include "runtime/tokenizer/tokenizer_folder.h"

namespace rankserve::launcher {

namespace {

// <bin>/../share/rankserve: the vocabulary and the built-in model, in the build and the install tree.
std::filesystem::path share_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (exe.parent_path() / ".." / "share" / "rankserve").lexically_normal();
}

}  // namespace

std::string builtin_model_path() { return (share_dir() / "builtin.nemo").string(); }

std::string model_path_of(const Options& options) {
  if (options.model_path == kBuiltInName) return builtin_model_path();
  if (options.model_path.empty() && options.command == "serve") {
    std::error_code ec;
    return std::filesystem::exists(builtin_model_path(), ec) ? builtin_model_path() : kBuiltInFallback;
  }
  return options.model_path;
}

std::string tokenizer_folder_of(const Options& options) {
  if (!options.tokenizer.empty()) return options.tokenizer;
  std::string model = model_path_of(options);  // not const: returned by move
  if (model.rfind("random/", 0) != 0) return model;
  return (share_dir() / "gpt2").string();
}

runtime::BpeTokenizer load_tokenizer(const Options& options) {
  const std::string model = model_path_of(options);
  if (options.tokenizer.empty() && model.rfind("random/", 0) != 0 && runtime::is_nemo_path(model)) {
    const runtime::NemoTokenizerTexts t = runtime::read_nemo_tokenizer(model);
    // NeMo's GPT-2 BPE matches <|endoftext|> whole, as Megatron's tokenizer does.
    const std::string specials[] = {"<|endoftext|>"};
    return runtime::BpeTokenizer::from_texts({t.vocab_json, t.vocab_origin}, {t.merges_txt, t.merges_origin}, specials);
  }
  const std::string folder = tokenizer_folder_of(options);
  std::error_code ec;
  if (options.tokenizer.empty() && model.rfind("random/", 0) == 0 && !std::filesystem::is_directory(folder, ec)) {
    throw Error(ErrorCode::load,
                fmt::format("tokenizer: the built-in GPT-2 vocabulary of {} is not at {} (the binary looks in "
                            "<its folder>/../share/rankserve/gpt2); run the binary from its build or install tree "
                            "(cmake --install), or pass --tokenizer FOLDER holding encoder.json and vocab.bpe",
                            model, folder));
  }
  return runtime::load_tokenizer_folder(folder);
}

int random_model_eos(const Options& options, const runtime::BpeTokenizer& tokenizer) {
  if (model_path_of(options).rfind("random/", 0) != 0) return -1;
  for (const char* token : {"</s>", "<|endoftext|>"}) {
    if (auto id = tokenizer.token_id(token)) return *id;
  }
  return -1;
}

runtime::EngineOptions engine_options_of(const Options& options, int sampleable_vocab, int eos_token_id) {
  runtime::EngineOptions engine_options;
  engine_options.model_path = model_path_of(options);
  engine_options.seed = options.weights_seed;
  engine_options.sampleable_vocab = sampleable_vocab;
  engine_options.eos_token_id = eos_token_id;
  engine_options.cpu_threads = options.cpu_threads;
  engine_options.dtype = options.dtype == "bf16"   ? runtime::ComputeDtype::bf16
                         : options.dtype == "fp16" ? runtime::ComputeDtype::fp16
                         : options.dtype == "fp32" ? runtime::ComputeDtype::fp32
                                                   : runtime::ComputeDtype::automatic;
  return engine_options;
}

namespace {

// One rank's row of the memory table (doubles, so byte counts stay exact).
struct MemoryRow {
  double weight_bytes = 0, kv_bytes_per_token = 0, kv_budget_bytes = 0, kv_tokens = 0, free_bytes = 0, total_bytes = 0;
};

// Device columns when any rank is on a GPU (the rendezvous table names each rank's device).
void log_memory_table(const std::vector<MemoryRow>& rows, int max_context) {
  const bool gpus = std::any_of(rows.begin(), rows.end(), [](const MemoryRow& r) { return r.total_bytes > 0; });
  std::string table = fmt::format("rank  weights MB  KV KB/token  KV MB/{}-token sequence  KV budget MB  KV tokens", max_context);
  if (gpus) table += "  device free MB  device total MB";
  for (size_t r = 0; r < rows.size(); ++r) {
    const MemoryRow& m = rows[r];
    table +=
        fmt::format("\n{:<5} {:>10.1f}  {:>11.1f}  {:>10.1f}  {:>12.1f}  {:>9.0f}", r, m.weight_bytes / 1e6,
                    m.kv_bytes_per_token / 1e3, m.kv_bytes_per_token * max_context / 1e6, m.kv_budget_bytes / 1e6, m.kv_tokens);
    if (gpus) table += fmt::format("  {:>14.1f}  {:>15.1f}", m.free_bytes / 1e6, m.total_bytes / 1e6);
  }
  log::info("memory per rank:\n{}", table);
}

}  // namespace

LoadedModel load_model(const Options& options, const runtime::ProcessGroups& groups, int sampleable_vocab, int eos_token_id) {
  const auto start = std::chrono::steady_clock::now();
  if (options.model_path.empty() && model_path_of(options) == kBuiltInFallback) {
    log::warn(
        "the built-in model is not at {} (this build did not train it: RANKSERVE_BUILTIN_MODEL=OFF, or no "
        "python3 with torch); serving {} (random weights, so gibberish) instead",
        builtin_model_path(), kBuiltInFallback);
  }
  runtime::EngineOptions engine_options = engine_options_of(options, sampleable_vocab, eos_token_id);
  engine_options.device = groups.device;
  const std::string device = runtime::compute_device_of(groups.device);
  MemoryPlanInputs plan;
  plan.device = device;
  plan.memory = runtime::query_device_memory(device);
  plan.kv_cache_gb = options.kv_cache_gb;
  plan.gpu_memory_utilization = options.gpu_memory_utilization;
  if (plan.memory) {  // on a GPU a shard that cannot fit fails before a byte of it is read
    const runtime::ModelConfig config = runtime::read_model_config(engine_options);
    plan.weight_bytes =
        estimate_shard_bytes(config, groups.tp->size(), groups.pp->size(), groups.pp->rank(),
                             runtime::element_bytes(runtime::resolve_dtype(engine_options.dtype, device, config)));
    plan_kv_budget(plan);
  }
  LoadedModel loaded;
  loaded.engine = runtime::Engine::load(engine_options, groups);
  runtime::Engine& engine = *loaded.engine;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log::info("loaded {} ({}) on {} in {}: shard {:.1f} MB, read {:.1f} MB from files in {:.2f} s ({:.2f} GB/s)",
            engine_options.model_path, runtime::describe(engine.config()), engine.device(), engine.dtype(),
            engine.weight_bytes() / 1e6, engine.bytes_read() / 1e6, seconds, engine.bytes_read() / 1e9 / std::max(seconds, 1e-9));
  if (plan.memory) {
    plan.memory = runtime::query_device_memory(device);
    plan.weights_loaded = true;
  }
  plan.weight_bytes = engine.weight_bytes();
  plan.kv_bytes_per_token = engine.kv_cache_bytes_per_token();
  const KvBudget budget = plan_kv_budget(plan);
  // Rank 0 prints every rank's memory: weights, the KV cache per token, per full-context sequence and
  // its budget, and the device's memory after loading.
  const MemoryRow mine{static_cast<double>(plan.weight_bytes),
                       static_cast<double>(plan.kv_bytes_per_token),
                       static_cast<double>(budget.kv_bytes),
                       static_cast<double>(budget.kv_tokens),
                       plan.memory ? static_cast<double>(plan.memory->free_bytes) : 0.0,
                       plan.memory ? static_cast<double>(plan.memory->total_bytes) : 0.0};
  std::vector<MemoryRow> rows(static_cast<size_t>(groups.world->size()));
  groups.world->all_gather(runtime::Buffer{const_cast<MemoryRow*>(&mine), sizeof(mine), runtime::ElementType::byte, false},
                           runtime::Buffer{rows.data(), rows.size() * sizeof(MemoryRow), runtime::ElementType::byte, false});
  log_memory_table(rows, engine.max_context());
  loaded.kv_tokens = static_cast<int64_t>(std::min_element(rows.begin(), rows.end(), [](const MemoryRow& a, const MemoryRow& b) {
                                            return a.kv_tokens < b.kv_tokens;
                                          })->kv_tokens);
  return loaded;
}

}  // namespace rankserve::launcher
