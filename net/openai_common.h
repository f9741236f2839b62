// What the OpenAI completions and chat handlers share: the sampling fields both accept, the
// model check, ids, usage and finish reasons. Used by openai_completions.cpp and openai_chat.cpp.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "net/generation.h"
#include "net/server_context.h"
#include "net/stream_loop.h"

namespace rankserve::net {

inline constexpr int kOpenAiMaxChoices = 128;  // prompts x n per request at most

struct OpenAiSampling {
  GenerationSettings settings;
  int n = 1;  // choices per prompt
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Throws not_found (param "model", code "model_not_found") unless `model` is absent or the served name.
void check_openai_model(const ServerContext& context, const boost::json::object& body);

// Reads model, n, stream, stream_options, temperature (default 1: sampling; 0: greedy), top_p,
// top_k, stop, seed, repetition_penalty, ignore_eos, the penalties and logit_bias (rejected unless
// neutral), and the first of `max_tokens_keys` present (default 16). Throws field_error.
OpenAiSampling read_openai_sampling(const boost::json::object& body, std::initializer_list<std::string_view> max_tokens_keys);

// Requests for `prompts` x n choices; choice i*n + j is prompt i's j-th sample (seed + j when seeded).
std::vector<TextRequest> openai_requests(const ServerContext& context, const std::vector<std::string>& prompts,
                                         const OpenAiSampling& sampling);

std::string new_openai_id(std::string_view prefix);  // prefix + 24 random hex digits
int64_t unix_time_now();
std::string_view openai_finish_reason(FinishReason reason);  // "stop" or "length"

// usage of choices from `num_prompts` prompts, n each: prompt tokens count once per prompt.
boost::json::object openai_usage(const std::vector<SampleState>& samples, int n);

// The fields every completion and chunk carries: {"id", "object", "created", "model", "choices"}.
// Plain function (not a coroutine body): see the GCC 12 note in openai_completions.cpp.
boost::json::object openai_envelope(std::string_view id, std::string_view object, int64_t created, std::string_view model,
                                    boost::json::array choices);

// The envelope with "usage" of `samples` (n per prompt): a whole response's body, or a stream's
// usage chunk (with no choices).
boost::json::object openai_with_usage(std::string_view id, std::string_view object, int64_t created, std::string_view model,
                                      boost::json::array choices, const std::vector<SampleState>& samples, int n);

// A whole (not streamed) response's body: one choice per sample, {"index", the fields of
// choice(index, sample), "finish_reason"}, with usage. Plain function (see openai_envelope).
boost::json::object openai_response_body(std::string_view id, std::string_view object, int64_t created, std::string_view model,
                                         const std::vector<SampleState>& samples, int n,
                                         const std::function<boost::json::object(size_t, const SampleState&)>& choice);

// What every chunk of one streamed completion carries.
struct OpenAiStream {
  std::string id;
  std::string object;  // "text_completion" or "chat.completion.chunk"
  int64_t created = 0;
  std::string model;
  int n = 1;                   // choices per prompt, for the usage
  bool include_usage = false;  // stream_options.include_usage: "usage": null on every chunk, then a usage chunk
};

// The framing the completions and chat streams share: chunks of one choice each, and the trailer
// (the usage chunk when asked for, then `data: [DONE]`). The protocols frame their events.
class OpenAiStreamFraming : public StreamFraming {
 public:
  explicit OpenAiStreamFraming(OpenAiStream stream);
  void frame_trailer(const Generation& generation, std::string& out) override;

 protected:
  // Appends the event of a chunk whose only choice is `choice` ({"index", ..., "finish_reason"}).
  void frame_choice(boost::json::object choice, std::string& out) const;

 private:
  OpenAiStream stream_;
};

}  // namespace rankserve::net
