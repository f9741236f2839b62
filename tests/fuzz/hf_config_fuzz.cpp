// Hugging Face config.json (runtime/model/model_config.cpp): parse_hf_config, as read_hf_config calls
// it. Besides the sanitizers it checks that an accepted config's head width is computable and
// positive, as the model code uses it. Input: the JSON text.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "runtime/model/config_text.h"
#include "tests/fuzz/fuzz_support.h"

using namespace rankserve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<runtime::ModelConfig> config;
  fuzz::expect_only(ErrorCode::load,
                    [&] { config = runtime::parse_hf_config(std::string(fuzz::as_text(data, size)), "config.json"); });
  if (config) {
    if (config->num_attention_heads <= 0 || config->head_dim() <= 0) std::abort();
    (void)runtime::describe(*config);
  }
  return 0;
}
