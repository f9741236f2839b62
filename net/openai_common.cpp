#include "net/openai_common.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>

#include "net/json_fields.h"
#include "net/sse.h"

namespace rankserve::net {

namespace json = boost::json;

void check_openai_model(const ServerContext& context, const json::object& body) {
  const auto model = read_string(body, "model");
  const std::string& served = context.service.model().name;
  if (!model || *model == served) return;
  ErrorDetail detail;
  detail.param = "model";
  detail.openai_code = "model_not_found";
  throw HttpError(ErrorCode::not_found,
                  fmt::format("request: model '{}' does not exist; this server serves '{}'", *model, served), std::move(detail));
}

OpenAiSampling read_openai_sampling(const json::object& body, std::initializer_list<std::string_view> max_tokens_keys) {
  OpenAiSampling out;
  GenerationSettings& s = out.settings;
  s.max_tokens = 16;  // OpenAI's default for completions
  s.max_tokens_field = std::string(*max_tokens_keys.begin());
  for (std::string_view key : max_tokens_keys) {
    if (auto v = read_int(body, key)) {
      if (*v < 1) throw field_error(key, fmt::format("is {}; expected new tokens >= 1", *v));
      s.max_tokens =
          static_cast<int>(std::min<int64_t>(*v, std::numeric_limits<int>::max()));  // the service refuses more than its context
      s.max_tokens_field = std::string(key);
      break;
    }
  }
  if (auto n = read_int(body, "n")) {
    if (*n < 1 || *n > kOpenAiMaxChoices) throw field_error("n", fmt::format("is {}; expected 1..{}", *n, kOpenAiMaxChoices));
    out.n = static_cast<int>(*n);
  }
  out.stream = read_bool(body, "stream").value_or(false);
  if (const json::object* options = read_object(body, "stream_options")) {
    out.include_usage = read_bool(*options, "include_usage", "stream_options.include_usage").value_or(false);
  }
  // OpenAI's default temperature is 1 (sampling); 0 means greedy.
  const double temperature = read_number(body, "temperature").value_or(1.0);
  if (temperature < 0 || temperature > 2) throw field_error("temperature", fmt::format("is {}; expected 0..2", temperature));
  s.greedy = temperature == 0;
  if (!s.greedy) s.temperature = to_float32(temperature, "temperature");
  if (auto top_p = read_number(body, "top_p")) {
    if (!(*top_p > 0) || *top_p > 1) throw field_error("top_p", fmt::format("is {}; expected (0, 1]", *top_p));
    s.top_p = to_float32(*top_p, "top_p");
  }
  if (auto top_k = read_int(body, "top_k")) {  // vLLM's extension; -1 and 0 mean no limit
    if (*top_k < -1) throw field_error("top_k", fmt::format("is {}; expected -1, 0 (no limit) or more", *top_k));
    s.top_k = static_cast<int>(std::clamp<int64_t>(*top_k, 0, std::numeric_limits<int>::max()));
  }
  if (auto penalty = read_number(body, "repetition_penalty")) {
    if (!(*penalty > 0)) throw field_error("repetition_penalty", fmt::format("is {}; expected > 0 (1: off)", *penalty));
    s.repetition_penalty = to_float32(*penalty, "repetition_penalty");
  }
  for (std::string_view key : {"presence_penalty", "frequency_penalty"}) {
    if (auto v = read_number(body, key); v && *v != 0) {
      throw field_error(key, fmt::format("is {}; rankserve supports only 0 (use repetition_penalty)", *v));
    }
  }
  if (const json::object* bias = read_object(body, "logit_bias"); bias != nullptr && !bias->empty()) {
    throw field_error("logit_bias", "is not supported; send none or {}");
  }
  if (auto stop = read_strings(body, "stop")) {
    s.stop = *stop;
    std::erase(s.stop, std::string());
    s.keep_stop = false;  // OpenAI cuts the text before the stop sequence
  }
  if (auto seed = read_int(body, "seed")) s.seed = static_cast<uint64_t>(*seed);
  s.ignore_eos = read_bool(body, "ignore_eos").value_or(false);
  if (auto min_tokens = read_int(body, "min_tokens")) {  // vLLM's extension
    if (*min_tokens < 0) throw field_error("min_tokens", fmt::format("is {}; expected >= 0", *min_tokens));
    s.min_tokens = static_cast<int>(std::min<int64_t>(*min_tokens, s.max_tokens));
  }
  return out;
}

std::vector<TextRequest> openai_requests(const ServerContext& context, const std::vector<std::string>& prompts,
                                         const OpenAiSampling& sampling) {
  if (prompts.size() * static_cast<size_t>(sampling.n) > static_cast<size_t>(kOpenAiMaxChoices)) {
    throw field_error("n", fmt::format("{} prompts x n={} is {} choices; at most {} per request", prompts.size(), sampling.n,
                                       prompts.size() * static_cast<size_t>(sampling.n), kOpenAiMaxChoices));
  }
  const Clock::time_point deadline = context.default_deadline();
  std::vector<TextRequest> out;
  for (const std::string& prompt : prompts) {
    for (int j = 0; j < sampling.n; ++j) {
      TextRequest r;
      r.prompt = prompt;
      r.settings = sampling.settings;
      if (r.settings.seed) r.settings.seed = *r.settings.seed + static_cast<uint64_t>(j);  // n seeded choices differ
      r.deadline = deadline;
      out.push_back(std::move(r));
    }
  }
  return out;
}

std::string new_openai_id(std::string_view prefix) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  return fmt::format("{}{:016x}{:08x}", prefix, random(), static_cast<uint32_t>(random()));
}

int64_t unix_time_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string_view openai_finish_reason(FinishReason reason) { return reason == FinishReason::stop ? "stop" : "length"; }

json::object openai_usage(const std::vector<SampleState>& samples, int n) {
  int64_t prompt = 0;
  int64_t completion = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (i % static_cast<size_t>(n) == 0) prompt += samples[i].finish.prompt_tokens;
    completion += samples[i].finish.completion_tokens;
  }
  return json::object{{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

json::object openai_envelope(std::string_view id, std::string_view object, int64_t created, std::string_view model,
                             json::array choices) {
  return json::object{{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"choices", std::move(choices)}};
}

json::object openai_with_usage(std::string_view id, std::string_view object, int64_t created, std::string_view model,
                               json::array choices, const std::vector<SampleState>& samples, int n) {
  json::object body = openai_envelope(id, object, created, model, std::move(choices));
  body["usage"] = openai_usage(samples, n);
  return body;
}

json::object openai_response_body(std::string_view id, std::string_view object, int64_t created, std::string_view model,
                                  const std::vector<SampleState>& samples, int n,
                                  const std::function<json::object(size_t, const SampleState&)>& choice) {
  json::array choices;
  for (size_t i = 0; i < samples.size(); ++i) {
    json::object c;
    c["index"] = i;
    for (auto& [key, value] : choice(i, samples[i])) c[key] = std::move(value);
    c["finish_reason"] = openai_finish_reason(samples[i].finish.reason);
    choices.push_back(std::move(c));
  }
  return openai_with_usage(id, object, created, model, std::move(choices), samples, n);
}

OpenAiStreamFraming::OpenAiStreamFraming(OpenAiStream stream) : stream_(std::move(stream)) {}

void OpenAiStreamFraming::frame_choice(json::object choice, std::string& out) const {
  json::object c = openai_envelope(stream_.id, stream_.object, stream_.created, stream_.model, json::array{std::move(choice)});
  if (stream_.include_usage) c["usage"] = nullptr;
  out += sse_frame(serialize_json(c));
}

void OpenAiStreamFraming::frame_trailer(const Generation& generation, std::string& out) {
  if (stream_.include_usage) {
    out += sse_frame(serialize_json(openai_with_usage(stream_.id, stream_.object, stream_.created, stream_.model, json::array(),
                                                      generation.samples(), stream_.n)));
  }
  out += kSseDone;
}

}  // namespace rankserve::net
