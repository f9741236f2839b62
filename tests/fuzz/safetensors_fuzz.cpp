// safetensors files (runtime/model/checkpoint.cpp: parse_safetensors): the 8-byte header length,
// the JSON header, and each tensor's dtype, shape and data_offsets against the file. Input: the file.
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/model/tensor_file.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/tensor_file_checks.h"

using namespace rankserve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return -1;  // TensorFile refuses an empty file before any parsing
  auto file = std::make_unique<runtime::TensorFile>(std::string(fuzz::as_text(data, size)), "fuzz.safetensors");
  bool parsed = false;
  fuzz::expect_only(ErrorCode::load, [&] {
    runtime::parse_safetensors(*file);
    parsed = true;
  });
  if (parsed) fuzz::check_views(*file);
  return 0;
}
