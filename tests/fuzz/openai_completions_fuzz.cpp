// POST /v1/completions bodies: parse_json_object and decode_completion_request (net/openai_completions.cpp,
// with read_openai_sampling from net/openai_common.cpp), as the handler runs them.
#include <cstdint>

#include "net/json_fields.h"
#include "net/openai_decode.h"
#include "tests/fuzz/fuzz_support.h"

using namespace rankserve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::expect_only(ErrorCode::bad_request,
                    [&] { net::decode_completion_request(net::parse_json_object(fuzz::as_text(data, size))); });
  return 0;
}
