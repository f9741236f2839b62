// One measure of bench/llama_bench.sh, the same for both engines: its prompts, its timing formula and
// the result line. Included by bench/llama_compare.cpp (rankserve) and bench/llama/llama_measure.cpp
// (llama.cpp through llama.h), so both time exactly the same work. Standard library only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace rankserve::bench {

using TokenIds = std::vector<int32_t>;

// What to time: `decode`: `batch` sequences of 8-token prompts, `new_tokens` decode steps;
// `prefill`: one prompt of `prompt_tokens` tokens and one new token.
struct Measure {
  std::string kind;  // "decode" or "prefill"
  int batch = 1;
  int threads = 1;  // compute threads of the engine
  int new_tokens = 32;
  int prompt_tokens = 512;
};

// "decode:BATCH:THREADS:NEW_TOKENS" or "prefill:TOKENS:THREADS". Throws std::invalid_argument naming
// the spec.
inline Measure parse_measure(const std::string& spec) {
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  const auto bad = [&] {
    return std::invalid_argument("measure '" + spec + "' is not decode:BATCH:THREADS:NEW_TOKENS or prefill:TOKENS:THREADS");
  };
  auto positive = [&](const std::string& text) {
    size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(text, &used);
    } catch (const std::exception&) {
      throw bad();
    }
    if (used != text.size() || value <= 0) throw bad();
    return value;
  };
  Measure m;
  m.kind = parts[0];
  if (m.kind == "decode" && parts.size() == 4) {
    m.batch = positive(parts[1]);
    m.threads = positive(parts[2]);
    m.new_tokens = positive(parts[3]);
  } else if (m.kind == "prefill" && parts.size() == 3) {
    m.prompt_tokens = positive(parts[1]);
    m.threads = positive(parts[2]);
  } else {
    throw bad();
  }
  return m;
}

// The prompts of a measure (decode_bench's): sequence b of a decode batch is 100 + 37 b + i, i < 8;
// the prefill prompt is 100 + (37 i) mod 5000.
inline std::vector<TokenIds> prompts_of(const Measure& m) {
  std::vector<TokenIds> prompts;
  if (m.kind == "prefill") {
    TokenIds prompt;
    for (int i = 0; i < m.prompt_tokens; ++i) prompt.push_back(100 + (37 * i) % 5000);
    prompts.push_back(prompt);
    return prompts;
  }
  for (int b = 0; b < m.batch; ++b) {
    TokenIds prompt;
    for (int i = 0; i < 8; ++i) prompt.push_back(100 + 37 * b + i);
    prompts.push_back(prompt);
  }
  return prompts;
}

struct MeasureResult {
  double tokens_per_s = 0;           // decode: batch / seconds per step; prefill: prompt tokens / seconds
  std::vector<TokenIds> greedy_ids;  // decode: each sequence's 1 + new_tokens greedy tokens
};

// Times `generate(prompts, max_new_tokens)` (greedy; returns each sequence's new tokens) as
// decode_bench does. Decode: after a warm-up of 2 tokens, a step = (time of 1 + n tokens - time of 1
// token) / n. Prefill: best of 2 runs of the prompt and 1 token, after a warm-up.
template <typename Generate>
MeasureResult run_measure(const Measure& m, Generate generate) {
  using Clock = std::chrono::steady_clock;
  const std::vector<TokenIds> prompts = prompts_of(m);
  auto seconds_of = [&](int tokens, std::vector<TokenIds>* ids) {
    const auto start = Clock::now();
    std::vector<TokenIds> out = generate(prompts, tokens);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (ids != nullptr) *ids = std::move(out);
    return seconds;
  };
  MeasureResult result;
  if (m.kind == "prefill") {
    seconds_of(1, nullptr);
    const double best = std::min(seconds_of(1, nullptr), seconds_of(1, nullptr));
    result.tokens_per_s = m.prompt_tokens / best;
    return result;
  }
  seconds_of(2, nullptr);
  const double first = seconds_of(1, nullptr);
  const double total = seconds_of(1 + m.new_tokens, &result.greedy_ids);
  result.tokens_per_s = m.batch / ((total - first) / m.new_tokens);
  return result;
}

// The result line llama_bench.sh reads: "result ENGINE DTYPE SPEC TOKENS_PER_S ids=a,b,...;c,d,...".
inline void print_result(const std::string& engine, const std::string& dtype, const std::string& spec, const MeasureResult& r) {
  std::string ids;
  for (size_t s = 0; s < r.greedy_ids.size(); ++s) {
    if (s > 0) ids += ';';
    for (size_t i = 0; i < r.greedy_ids[s].size(); ++i) ids += (i > 0 ? "," : "") + std::to_string(r.greedy_ids[s][i]);
  }
  std::printf("result %s %s %s %.2f ids=%s\n", engine.c_str(), dtype.c_str(), spec.c_str(), r.tokens_per_s, ids.c_str());
  std::fflush(stdout);
}

}  // namespace rankserve::bench
