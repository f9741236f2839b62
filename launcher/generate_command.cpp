#include "launcher/generate_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <boost/json.hpp>
#include <charconv>
#include <optional>
#include <chrono>
#include <cstdio>

#include "runtime/core/error.h"
#include "runtime/core/log.h"
#include "runtime/engine.h"
#include "runtime/tokenizer/tokenizer_folder.h"

namespace rankserve::launcher {

std::vector<int32_t> parse_prompt_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = std::string_view(text).substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int32_t id = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || id < 0) {
      throw Error(ErrorCode::usage, fmt::format("options: --prompt-ids={} has '{}', not a token id", text, item));
    }
    ids.push_back(id);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

void run_generate(const Options& options, const runtime::ProcessGroups& groups, int global_rank) {
  std::optional<runtime::BpeTokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (!options.prompt.empty()) {
    tokenizer = runtime::load_tokenizer_folder(options.tokenizer.empty() ? options.model_path : options.tokenizer);
    prompt = tokenizer->encode(options.prompt);
  } else {
    prompt = parse_prompt_ids(options.prompt_ids);
  }
  const auto start = std::chrono::steady_clock::now();
  runtime::EngineOptions engine_options;
  engine_options.model_path = options.model_path;
  engine_options.seed = options.seed;
  auto engine = runtime::Engine::load(engine_options, groups);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log::info("loaded {} ({}): shard {:.1f} MB, read {:.1f} MB from files in {:.2f} s ({:.2f} GB/s)", options.model_path,
            runtime::describe(engine->config()), engine->weight_bytes() / 1e6, engine->bytes_read() / 1e6, seconds,
            engine->bytes_read() / 1e9 / std::max(seconds, 1e-9));
  if (tokenizer && engine->config().bos_token_id >= 0) prompt.insert(prompt.begin(), engine->config().bos_token_id);
  const runtime::Generation result = engine->generate_greedy(prompt, options.max_tokens, !options.no_kv_cache);
  groups.world->barrier();
  if (global_rank != 0) return;
  // Text: the prompt and its continuation, special tokens (BOS, EOS) left out, as the examples print it.
  std::string text;
  if (tokenizer) {
    std::vector<int32_t> shown;
    for (int32_t id : result.ids) {
      if (id != engine->config().eos_token_id) shown.push_back(id);
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

}  // namespace rankserve::launcher
