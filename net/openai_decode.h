// The body -> request decoding of POST /v1/completions (openai_completions.cpp) and
// /v1/chat/completions (openai_chat.cpp): pure functions of the parsed body, with no server, called
// by the handlers (after the model check) and by the OpenAI fuzzers. Both throw field_error.
#pragma once

#include <boost/json/object.hpp>

#include <string>
#include <vector>

#include "net/openai_common.h"

namespace rankserve::net {

struct CompletionRequest {
  std::vector<std::string> prompts;  // `prompt`: a string or a non-empty array of strings
  OpenAiSampling sampling;
  bool echo = false;
  int num_logprobs = -1;  // `logprobs` 0..5; -1: none
};

CompletionRequest decode_completion_request(const boost::json::object& body);

struct ChatRequest {
  std::string prompt;       // `messages` rendered with the plain chat template (docs/openai.md)
  OpenAiSampling sampling;  // its stop strings end with the template's "\nuser:"
  bool logprobs = false;
  int num_top = 0;  // `top_logprobs` 0..20
};

ChatRequest decode_chat_request(const boost::json::object& body);

}  // namespace rankserve::net
