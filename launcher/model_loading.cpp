#include "launcher/model_loading.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>

#include "runtime/core/error.h"
#include "runtime/core/log.h"
#include "runtime/model/nemo_tokenizer.h"
#include "runtime/tokenizer/tokenizer_folder.h"

namespace rankserve::launcher {

std::string model_path_of(const Options& options) {
  if (options.model_path.empty() && options.command == "serve") return kBuiltInModel;
  return options.model_path;
}

std::string tokenizer_folder_of(const Options& options) {
  if (!options.tokenizer.empty()) return options.tokenizer;
  std::string model = model_path_of(options);  // not const: returned by move
  if (model.rfind("random/", 0) != 0) return model;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (exe.parent_path() / ".." / "share" / "rankserve" / "gpt2").lexically_normal().string();
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
                                                   : runtime::ComputeDtype::fp32;
  return engine_options;
}

LoadedModel load_model(const Options& options, const runtime::ProcessGroups& groups, int sampleable_vocab, int eos_token_id) {
  const auto start = std::chrono::steady_clock::now();
  const runtime::EngineOptions engine_options = engine_options_of(options, sampleable_vocab, eos_token_id);
  LoadedModel loaded;
  loaded.engine = runtime::Engine::load(engine_options, groups);
  runtime::Engine& engine = *loaded.engine;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log::info("loaded {} ({}): shard {:.1f} MB, read {:.1f} MB from files in {:.2f} s ({:.2f} GB/s)", engine_options.model_path,
            runtime::describe(engine.config()), engine.weight_bytes() / 1e6, engine.bytes_read() / 1e6, seconds,
            engine.bytes_read() / 1e9 / std::max(seconds, 1e-9));
  // Rank 0 prints every rank's memory: weights, and the KV cache per token and per full-context sequence.
  const std::array<float, 2> mine{static_cast<float>(engine.weight_bytes() / 1e6),
                                  static_cast<float>(engine.kv_cache_bytes_per_token() / 1e3)};
  std::vector<float> all(mine.size() * static_cast<size_t>(groups.world->size()));
  groups.world->all_gather(mine, all);
  std::string table = fmt::format("rank  weights MB  KV KB/token  KV MB/{}-token sequence", engine.max_context());
  float max_kv = 0;
  for (int r = 0; r < groups.world->size(); ++r) {
    const float weights = all[2 * r], kv = all[2 * r + 1];
    max_kv = std::max(max_kv, kv);
    table += fmt::format("\n{:<5} {:>10.1f}  {:>11.1f}  {:>10.1f}", r, weights, kv, kv * engine.max_context() / 1e3);
  }
  log::info("memory per rank:\n{}", table);
  loaded.max_kv_cache_bytes_per_token = static_cast<uint64_t>(max_kv * 1e3);
  return loaded;
}

}  // namespace rankserve::launcher
