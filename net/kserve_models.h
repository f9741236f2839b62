// The two KServe model contracts rankserve serves, chosen by ModelInfo::family: OPT (the Hugging
// Face OPT example: `input`, `output_length` -> `output`) and GPT (NeMo Megatron GPT: `prompts` and
// optional sampling inputs -> `sentences`, `tokens`, `token_ids`, `logprob`). Maps decoded tensors
// to one TextRequest per sample and finished samples back to output tensors. Used by kserve.cpp.
#pragma once

#include <string>
#include <vector>

#include "core/generation_service.h"
#include "net/generation.h"
#include "net/tensor.h"

namespace rankserve::net {

struct TensorSpec {
  std::string name;
  DataType datatype = DataType::bytes;
  std::vector<int64_t> dims;  // per sample, without the batch dimension; -1: variable
  bool optional = false;
};

struct ModelContract {
  bool opt = false;          // the OPT contract; else NeMo's GPT contract
  int max_batch_size = 0;    // samples per infer request at most
  int max_context = 0;       // the model's tokens per sequence (NeMo's max_length is clipped to it); 0: unknown
  std::string prompt_input;  // "input" or "prompts"
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

inline constexpr int kOptMaxBatchSize = 256;                   // the OPT example's config.pbtxt
inline constexpr int kGptMaxBatchSize = 128;                   // the NeMo example's triton deployment
inline constexpr const char* kGptEndOfText = "<|endoftext|>";  // NeMo's default end string, removed from sentences

ModelContract contract_for(const ModelInfo& model);

// NeMo's generation defaults: greedy, temperature 1, top_k 0, top_p 1, repetition penalty 1, BOS
// added, end string "<|endoftext|>" kept, 0 to 30 new tokens.
GenerationSettings nemo_default_settings();

// Validates the inputs against the contract (names, datatypes, batch dimensions, ranges) and builds
// one request per sample, each with `deadline`. Throws field_error naming the input. An OPT sample
// of output_length 0 gets max_tokens 0: the caller answers it with its prompt and never submits it.
std::vector<TextRequest> build_requests(const ModelContract& contract, const InferRequest& request, Clock::time_point deadline);

// The requested outputs (all by default) from the finished samples. Throws field_error for an
// unknown requested output.
std::vector<EncodedOutput> build_outputs(const ModelContract& contract, const InferRequest& request,
                                         const std::vector<std::string>& prompts, const std::vector<SampleState>& samples);

// Throws field_error for a requested output the contract does not have (before anything runs).
void check_requested_outputs(const ModelContract& contract, const InferRequest& request);

// `sentence` without a trailing "<|endoftext|>" (NeMo removes special tokens from sentences).
std::string strip_end_of_text(std::string sentence);

}  // namespace rankserve::net
