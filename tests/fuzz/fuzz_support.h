// What every fuzz target checks beyond the sanitizers: a decoder of outside bytes returns or throws
// rankserve::Error of its documented code. Any other exception is a bug (a 500 instead of a 400 that
// names the field, or a FATAL line without the file and key), reported as a crash. C++17: the
// torch-reader fuzzers are compiled as C++17 (see CMakeLists.txt).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

#include "core/error.h"

namespace rankserve::fuzz {

template <typename Decode>
void expect_only(ErrorCode code, Decode&& decode) {
  try {
    decode();
  } catch (const Error& e) {
    if (e.code() == code) return;
    std::fprintf(stderr, "fuzz: the decoder threw Error(%s) '%s'; expected Error(%s) or success\n",
                 std::string(to_string(e.code())).c_str(), e.what(), std::string(to_string(code)).c_str());
    std::abort();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: the decoder threw a non-Error std::exception '%s'; expected Error(%s) or success\n", e.what(),
                 std::string(to_string(code)).c_str());
    std::abort();
  }
}

inline std::string_view as_text(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

}  // namespace rankserve::fuzz
