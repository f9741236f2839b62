// Loading the model for `generate` and `serve`: the engine of every rank (with the load and memory
// report on rank 0) and the tokenizer of global rank 0.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "launcher/options.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine.h"
#include "runtime/tokenizer/bpe_tokenizer.h"

namespace rankserve::launcher {

// The model `serve` uses without --model-path (and `--model-path builtin`): the small model trained at
// build time (scripts/train_builtin.py: counting, letters, weekdays, months, repeated motifs), a NeMo
// checkpoint saved at TP 2 beside the binary (<bin>/../share/rankserve/builtin.nemo). When the build
// did not train it, serve falls back to random weights of the OPT example's smallest size with the GPT-2
// vocabulary installed beside rankserve (and says so).
inline constexpr const char* kBuiltInName = "builtin";
inline constexpr const char* kBuiltInFallback = "random/125M";
std::string builtin_model_path();

// --model-path, or the built-in model for serve (or --model-path builtin).
std::string model_path_of(const Options& options);

// The folder the tokenizer comes from: --tokenizer, else the model folder, else (random/<size>) the
// GPT-2 vocabulary installed beside the binary (<bin>/../share/rankserve/gpt2).
std::string tokenizer_folder_of(const Options& options);

// The tokenizer `generate --prompt` and `serve` use: tokenizer_folder_of(options), or the vocab and
// merges a NeMo checkpoint carries when --tokenizer is not given. Throws Error(load).
runtime::BpeTokenizer load_tokenizer(const Options& options);

// random/<size> weights have no tokenizer of their own: the tokenizer's end-of-text id ("</s>" in OPT's
// vocabulary, "<|endoftext|>" in GPT-2's) serves as their EOS and BOS. -1 for checkpoints (their config
// decides) or a tokenizer with neither.
int random_model_eos(const Options& options, const runtime::BpeTokenizer& tokenizer);

// What Engine::load gets for these options. `sampleable_vocab`/`eos_token_id`: from the tokenizer when
// one is used (0 / -1: the model's).
runtime::EngineOptions engine_options_of(const Options& options, int sampleable_vocab, int eos_token_id);

struct LoadedModel {
  std::unique_ptr<runtime::Engine> engine;
  int64_t kv_tokens = 0;  // the KV budget of a model copy: the smallest over every rank (launcher/memory_budget.h)
};

// Every rank calls after the communicators exist (collective over the world: the memory table). On a
// GPU a shard that cannot fit throws Error(load) before any weight is read.
// `sampleable_vocab`/`eos_token_id`: from the tokenizer when one is used (0 / -1: the model's).
LoadedModel load_model(const Options& options, const runtime::ProcessGroups& groups, int sampleable_vocab, int eos_token_id);

}  // namespace rankserve::launcher
