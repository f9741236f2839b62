// KServe v2 infer bodies, JSON and binary tensors: decode_infer_request (net/tensor.cpp) as
// kserve_infer (net/kserve.cpp) calls it, then both model contracts' checks and request building
// (net/kserve_models.cpp). Input: the Inference-Header-Content-Length value on the first line (an
// empty line: no header), then the body.
#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

#include "net/kserve_models.h"
#include "net/tensor.h"
#include "tests/fuzz/fuzz_support.h"

using namespace rankserve;
using namespace rankserve::net;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = fuzz::as_text(data, size);
  const size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return -1;
  const std::string_view header = input.substr(0, newline), body = input.substr(newline + 1);
  std::optional<size_t> json_size;
  if (!header.empty()) {  // kserve.cpp answers 400 for a header that is not a number before decoding
    size_t value = 0;
    const auto [end, ec] = std::from_chars(header.data(), header.data() + header.size(), value);
    if (ec != std::errc() || end != header.data() + header.size()) return -1;
    json_size = value;
  }
  std::optional<InferRequest> request;
  fuzz::expect_only(ErrorCode::bad_request, [&] { request = decode_infer_request(body, json_size); });
  if (!request) return 0;
  for (const char* family : {"opt", "nemo_gpt"}) {
    ModelInfo model;
    model.name = "model";
    model.family = family;
    model.max_context = 2048;
    const ModelContract contract = contract_for(model);
    fuzz::expect_only(ErrorCode::bad_request, [&] {
      check_requested_outputs(contract, *request);
      build_requests(contract, *request, Clock::time_point::max());
    });
  }
  return 0;
}
