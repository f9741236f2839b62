#include "launcher/generate_command.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <chrono>
#include <cstdio>

#include "runtime/core/error.h"
#include "runtime/core/log.h"
#include "runtime/engine.h"

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
  const std::vector<int32_t> prompt = parse_prompt_ids(options.prompt_ids);
  const auto start = std::chrono::steady_clock::now();
  runtime::EngineOptions engine_options;
  engine_options.model_path = options.model_path;
  engine_options.seed = options.seed;
  auto engine = runtime::Engine::load(engine_options, groups);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log::info("loaded {} ({}): shard {:.1f} MB, read {:.1f} MB from files in {:.2f} s ({:.2f} GB/s)", options.model_path,
            runtime::describe(engine->config()), engine->weight_bytes() / 1e6, engine->bytes_read() / 1e6, seconds,
            engine->bytes_read() / 1e9 / std::max(seconds, 1e-9));
  const runtime::Generation result = engine->generate_greedy(prompt, options.max_tokens, !options.no_kv_cache);
  groups.world->barrier();
  if (global_rank != 0) return;
  if (options.json) {
    std::vector<std::string> logprobs;
    for (float lp : result.logprobs) logprobs.push_back(fmt::format("{:.6f}", lp));
    std::printf("%s\n", fmt::format(R"({{"prompt_ids":[{}],"generated_ids":[{}],"logprobs":[{}]}})", fmt::join(prompt, ","),
                                    fmt::join(result.ids, ","), fmt::join(logprobs, ",")).c_str());
  } else {
    std::printf("generated ids: %s\n", fmt::format("{}", fmt::join(result.ids, " ")).c_str());
  }
  std::fflush(stdout);
}

}  // namespace rankserve::launcher
