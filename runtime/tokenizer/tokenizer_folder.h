// Finds and loads the tokenizer of a model folder: tokenizer.json, else vocab.json + merges.txt, else
// encoder.json + vocab.bpe (the same pair under openai/gpt-2's names).
// Called once at start-up by whoever tokenizes (rank 0).
#pragma once

#include <string>

#include "runtime/tokenizer/bpe_tokenizer.h"

namespace rankserve::runtime {

// The vocabulary's own special tokens ("<|endoftext|>", "</s>", "<s>", "<pad>", "<unk>") are matched
// whole. Throws Error(load) naming the folder when it holds no tokenizer files.
BpeTokenizer load_tokenizer_folder(const std::string& folder);

}  // namespace rankserve::runtime
