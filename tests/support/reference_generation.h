// Test helper: `rankserve generate` runs and the independent PyTorch reference (tests/reference/tiny_models.py)
// on tiny checkpoints it writes, with the comparison of their greedy ids and log-probabilities. Shared by the
// dist and gpu tiers. Needs RANKSERVE_BIN and RANKSERVE_SOURCE_DIR from the test target.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/tiny_checkpoint.h"

namespace rankserve::testing {

// One generated sequence; margins (the reference's alone) are the log-probability gap between the chosen
// token and the runner-up at each step.
struct Output {
  std::vector<int64_t> ids;
  std::vector<double> logprobs;
  std::vector<double> margins;
};

// The last JSON object in `text` (a generate --json line or the reference's output).
inline Output parse_output(const std::string& text) {
  const size_t brace = text.rfind("{\"");
  REQUIRE_MESSAGE(brace != std::string::npos, text);
  const boost::json::value v = boost::json::parse(text.substr(brace));
  Output out;
  for (auto& id : v.at("generated_ids").as_array()) out.ids.push_back(id.to_number<int64_t>());
  for (auto& lp : v.at("logprobs").as_array()) out.logprobs.push_back(lp.to_number<double>());
  if (const auto* m = v.as_object().if_contains("margins")) {
    for (auto& d : m->as_array()) out.margins.push_back(d.to_number<double>());
  }
  return out;
}

// Runs the reference script with `args`; the test stops unless it succeeds.
inline void reference(const std::string& args) {
  auto r = run(fmt::format("{} {}", kReferenceScript, args), std::chrono::minutes(2));
  REQUIRE_MESSAGE(r.code == 0, args << "\n" << r.output);
}

// What the reference (fp32 on the CPU) generates greedily after `prompt_ids` ("1,2,3").
inline Output reference_generate(const std::string& model, const std::string& prompt_ids, int count) {
  auto r = run(fmt::format("{} generate {} {} {}", kReferenceScript, model, prompt_ids, count), std::chrono::minutes(2));
  REQUIRE_MESSAGE(r.code == 0, r.output);
  return parse_output(r.output);
}

// The same for several prompts in one run of the reference: an output per prompt, in order.
inline std::vector<Output> reference_generate_all(const std::string& model, const std::vector<std::string>& prompts, int count) {
  std::string joined;
  for (const std::string& p : prompts) joined += (joined.empty() ? "" : ";") + p;
  auto r = run(fmt::format("{} generate {} '{}' {}", kReferenceScript, model, joined, count), std::chrono::minutes(3));
  REQUIRE_MESSAGE(r.code == 0, r.output);
  std::vector<Output> outputs;
  for (size_t at = r.output.find("{\""); at != std::string::npos; at = r.output.find("{\"", at + 1)) {
    outputs.push_back(parse_output(r.output.substr(at, r.output.find('\n', at) - at)));
  }
  REQUIRE(outputs.size() == prompts.size());
  return outputs;
}

// A fresh folder holding a tiny checkpoint of `family` written by the reference script.
inline std::string make_model(const std::string& family) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("rankserve-{}-{}", family, ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  reference(fmt::format("make {} {}", family, dir.string()));
  return dir.string();
}

// One run over several prompts (one batch, "a;b;c"): an output per prompt, in order.
inline std::vector<Output> generate_all(const std::string& model, const std::vector<std::string>& prompts,
                                        const std::string& flags, int max_tokens = 10) {
  std::string joined;
  for (const std::string& p : prompts) joined += (joined.empty() ? "" : ";") + p;
  auto r =
      run(fmt::format("{} generate --model-path {} --prompt-ids '{}' --max-tokens {} --json --log-level warn --timeout 60 {}",
                      RANKSERVE_BIN, model, joined, max_tokens, flags),
          std::chrono::minutes(3));
  INFO(flags << "\n" << r.output);
  REQUIRE(r.code == 0);
  std::vector<Output> lines;
  for (size_t at = r.output.find("{\""); at != std::string::npos; at = r.output.find("{\"", at + 1)) {
    lines.push_back(parse_output(r.output.substr(at, r.output.find('\n', at) - at)));
  }
  REQUIRE(lines.size() == prompts.size());
  return lines;
}

// The same ids, and each log-probability within `tolerance`.
inline void check_close(const Output& got, const Output& want, double tolerance) {
  CHECK(got.ids == want.ids);
  REQUIRE(got.logprobs.size() == want.logprobs.size());
  for (size_t i = 0; i < got.logprobs.size(); ++i) CHECK(std::abs(got.logprobs[i] - want.logprobs[i]) < tolerance);
}

// Reduced precision against the fp32 reference: each log-probability within `tolerance` and the same ids, up to
// a near-tie: at the first step whose ids differ, the reference's top two must be within 2 x `tolerance` of each
// other (then both sequences go on from different tokens and are compared no further).
inline void check_close_up_to_near_tie(const Output& got, const Output& want, double tolerance) {
  REQUIRE(want.margins.size() == want.ids.size());
  const size_t n = std::min(got.ids.size(), want.ids.size());
  for (size_t i = 0; i < n; ++i) {
    if (got.ids[i] != want.ids[i]) {
      INFO("step " << i << ": " << got.ids[i] << " instead of " << want.ids[i] << ", the reference's margin " << want.margins[i]);
      CHECK(want.margins[i] < 2 * tolerance);
      return;
    }
    INFO("step " << i << ": log-probability " << got.logprobs[i] << ", the reference's " << want.logprobs[i]);
    CHECK(std::abs(got.logprobs[i] - want.logprobs[i]) < tolerance);
  }
  CHECK(got.ids.size() == want.ids.size());
}

}  // namespace rankserve::testing
