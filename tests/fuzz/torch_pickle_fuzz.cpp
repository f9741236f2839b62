// torch.save's data.pkl (runtime/model/torch_zip.cpp: read_torch_pickle), then each tensor it
// describes placed as parse_torch_zip places it, in a 4 KiB file whose storage records all start at
// byte 0. Input: the pickle. (The zip around it is libtorch's PyTorchStreamReader, not fuzzed here.)
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "runtime/model/tensor_file.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/tensor_file_checks.h"

using namespace rankserve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<runtime::PickledTensor> tensors;
  try {
    tensors = runtime::read_torch_pickle(fuzz::as_text(data, size));
  } catch (const std::exception&) {
    return 0;  // its contract: parse_torch_zip turns these into Error(load) naming the file
  }
  auto file = std::make_unique<runtime::TensorFile>(std::string(4096, '\0'), "fuzz.bin");
  fuzz::expect_only(ErrorCode::load, [&] {
    for (runtime::PickledTensor& t : tensors) file->add(t.name, std::move(t.entry));
  });
  fuzz::check_views(*file);
  return 0;
}
