// NeMo's model_config.yaml (runtime/model/nemo_config.cpp): parse_nemo_config and
// nemo_tokenizer_files, as read_nemo_config and read_nemo_tokenizer call them. Besides the
// sanitizers it checks that an accepted config's derived sizes (head width, padded vocabulary) are
// computable and positive, as the model code uses them. Input: the YAML text.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "runtime/model/config_text.h"
#include "tests/fuzz/fuzz_support.h"

using namespace rankserve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(fuzz::as_text(data, size));
  std::optional<runtime::ModelConfig> config;
  fuzz::expect_only(ErrorCode::load, [&] {
    config = runtime::parse_nemo_config(yaml, "model_config.yaml", [](const std::string&) { return 50257; });
  });
  if (config) {
    if (config->num_attention_heads <= 0 || config->head_dim() <= 0 || config->checkpoint_vocab_rows < config->vocab_size)
      std::abort();
    (void)runtime::describe(*config);
  }
  fuzz::expect_only(ErrorCode::load, [&] { runtime::nemo_tokenizer_files(yaml, "model_config.yaml"); });
  return 0;
}
