#include "commands/generate_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <optional>

#include "commands/model_loading.h"
#include "core/error.h"
#include "core/log.h"
#include "runtime/engine.h"
#include "runtime/tokenizer/tokenizer_folder.h"

namespace rankserve::launcher {

std::vector<std::vector<int32_t>> parse_prompt_ids(const std::string& text) {
  std::vector<std::vector<int32_t>> prompts(1);
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = text.find_first_of(",;", start);
    std::string_view item = std::string_view(text).substr(start, end == std::string::npos ? std::string::npos : end - start);
    int32_t id = 0;
    auto [last, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc() || last != item.data() + item.size() || id < 0) {
      throw Error(ErrorCode::usage, fmt::format("options: --prompt-ids={} has '{}', not a token id", text, item));
    }
    prompts.back().push_back(id);
    if (end == std::string::npos) break;
    if (text[end] == ';') prompts.emplace_back();
    start = end + 1;
  }
  return prompts;
}

namespace {

// Rank 0: one line per prompt, text or JSON.
void print_result(const Options& options, const runtime::BpeTokenizer* tokenizer, const runtime::ModelConfig& config,
                  const std::vector<int32_t>& prompt, const runtime::Generation& result) {
  // Text: the prompt and its continuation, special tokens (BOS, EOS) left out, as the examples print it.
  std::string text;
  if (tokenizer) {
    std::vector<int32_t> shown;
    for (int32_t id : result.ids) {
      if (id != config.eos_token_id) shown.push_back(id);
    }
    text = options.prompt + tokenizer->decode(shown);
  }
  if (options.json) {
    std::vector<std::string> logprobs;
    for (float lp : result.logprobs) logprobs.push_back(fmt::format("{:.6f}", lp));
    boost::json::object out{{"prompt_ids", boost::json::value_from(prompt)},
                            {"generated_ids", boost::json::value_from(result.ids)}};
    std::string line = boost::json::serialize(out);
    line.pop_back();  // log-probabilities in fixed notation, appended by hand
    line += fmt::format(R"(,"logprobs":[{}])", fmt::join(logprobs, ","));
    if (tokenizer) line += fmt::format(R"(,"text":{})", boost::json::serialize(boost::json::value(text)));
    std::printf("%s}\n", line.c_str());
  } else if (tokenizer) {
    std::printf("%s\n", text.c_str());
  } else {
    std::printf("generated ids: %s\n", fmt::format("{}", fmt::join(result.ids, " ")).c_str());
  }
  std::fflush(stdout);
}

}  // namespace

void run_generate(const Options& options, const runtime::ProcessGroups& groups, int global_rank) {
  std::optional<runtime::BpeTokenizer> tokenizer;
  std::vector<std::vector<int32_t>> prompts;
  int eos = -1;
  if (!options.prompt.empty()) {
    tokenizer = load_tokenizer(options);
    prompts.push_back(tokenizer->encode(options.prompt));
    eos = random_model_eos(options, *tokenizer);
  } else {
    prompts = parse_prompt_ids(options.prompt_ids);
  }
  const LoadedModel loaded = load_model(options, groups, tokenizer ? tokenizer->vocab_size() : 0, eos);
  runtime::Engine& engine = *loaded.engine;
  // The family's BOS (OPT's </s>) goes in front of a text prompt (random/<size>: the tokenizer's end of text).
  if (tokenizer && engine.config().bos_token_id >= 0)
    prompts[0].insert(prompts[0].begin(), eos >= 0 ? eos : engine.config().bos_token_id);
  const runtime::SamplingParams sampling{!options.sample, options.temperature,        options.top_k,
                                         options.top_p,   options.repetition_penalty, options.min_length,
                                         options.seed};
  std::vector<runtime::SequenceSpec> sequences;
  for (std::vector<int32_t>& prompt : prompts)
    sequences.push_back({sequences.size(), std::move(prompt), options.max_tokens, sampling});
  const auto results = engine.generate(sequences, !options.no_kv_cache);
  if (global_rank != 0) return;
  for (size_t i = 0; i < sequences.size(); ++i) {
    print_result(options, tokenizer ? &*tokenizer : nullptr, engine.config(), sequences[i].prompt, results[i]);
  }
}

}  // namespace rankserve::launcher
