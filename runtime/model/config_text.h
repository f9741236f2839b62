// Model configs from their text, apart from the files: Hugging Face config.json (model_config.cpp)
// and NeMo's model_config.yaml (nemo_config.cpp). read_hf_config, read_nemo_config and
// read_nemo_tokenizer find the files; the config fuzzers call these directly. Torch-free; internal
// to the runtime.
#pragma once

#include <functional>
#include <string>

#include "runtime/model/model_config.h"

namespace rankserve::runtime {

// config.json's text; `file` names it in messages. Throws Error(load) naming the file and the key.
ModelConfig parse_hf_config(const std::string& json, const std::string& file);

// `file` names model_config.yaml in messages; `vocab_size(name)` counts the entries of the vocab
// file the config references (by its artifact name, see nemo_tokenizer_files). Throws Error(load)
// naming the file and key, also for layouts and architectures not supported (mcore, rotary
// positions, RMSNorm, grouped-query attention, no biases) and for sizes that do not fit together.
ModelConfig parse_nemo_config(const std::string& yaml, const std::string& file,
                              const std::function<int(const std::string& vocab_file)>& vocab_size);

struct NemoTokenizerFiles {
  std::string vocab;   // tokenizer.vocab_file, as the name of a file beside model_config.yaml
  std::string merges;  // tokenizer.merge_file, likewise
};

// Throws SettingError(load, "... (pass the tokenizer folder)", Setting::tokenizer_path) when either is missing.
NemoTokenizerFiles nemo_tokenizer_files(const std::string& yaml, const std::string& file);

}  // namespace rankserve::runtime
