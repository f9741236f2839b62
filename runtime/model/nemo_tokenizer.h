// The tokenizer files a NeMo checkpoint carries (model_config.yaml's tokenizer.vocab_file and
// merge_file, stored as nemo:<hash>_<name> artifacts), read from the .nemo in place or its folder.
// Torch-free; called once at start-up by whoever tokenizes.
#pragma once

#include <string>

namespace rankserve::runtime {

// True when `path` is a NeMo checkpoint (a folder with model_config.yaml, or a .nemo archive).
bool is_nemo_path(const std::string& path);

struct NemoTokenizerTexts {
  std::string vocab_json, vocab_origin;  // contents, and "<archive>:<member>" or the file's path for errors
  std::string merges_txt, merges_origin;
};

// Throws Error(load) naming the file and key when the config references no GPT-2 BPE vocab and
// merges (say: pass --tokenizer FOLDER) or a member cannot be read.
NemoTokenizerTexts read_nemo_tokenizer(const std::string& path);

}  // namespace rankserve::runtime
