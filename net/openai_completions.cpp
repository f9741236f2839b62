// POST /v1/completions (legacy completions) and the model list.
#include <fmt/format.h>

#include <boost/json.hpp>

#include "net/json_fields.h"
#include "net/openai.h"
#include "net/openai_common.h"
#include "net/openai_decode.h"

namespace rankserve::net {

namespace json = boost::json;

namespace {

std::vector<std::string> read_prompts(const json::object& body) {
  const json::value* prompt = find_field(body, "prompt");
  if (prompt == nullptr) throw field_error("prompt", "is missing; expected a string or an array of strings");
  if (prompt->is_string()) return {std::string(prompt->as_string())};
  if (!prompt->is_array() || prompt->as_array().empty()) {
    throw field_error("prompt", "is neither a string nor a non-empty array of strings");
  }
  std::vector<std::string> out;
  for (const json::value& item : prompt->as_array()) {
    if (!item.is_string())
      throw field_error("prompt", "has a non-string element (token-id prompts are not supported); expected strings");
    out.emplace_back(item.as_string());
  }
  return out;
}

// The legacy `logprobs` object for tokens [from, to) of a sample: chosen tokens only (rankserve
// returns no alternatives, so top_logprobs lists the chosen token alone), offsets into the text.
json::object legacy_logprobs(const SampleState& s, size_t from, size_t to, size_t text_offset, int num_top) {
  json::array tokens, token_logprobs, top, offsets;
  size_t offset = text_offset;
  for (size_t i = from; i < to; ++i) {
    const TokenEvent& t = s.tokens[i];
    tokens.emplace_back(t.token);
    token_logprobs.emplace_back(t.logprob);
    if (num_top > 0) top.push_back(json::object{{t.token, t.logprob}});
    offsets.emplace_back(offset);
    offset += t.text.size();
  }
  return json::object{{"tokens", std::move(tokens)},
                      {"token_logprobs", std::move(token_logprobs)},
                      {"top_logprobs", num_top > 0 ? json::value(std::move(top)) : json::value(nullptr)},
                      {"text_offset", std::move(offsets)}};
}

// A streamed completion: the echoed prompts first when asked, then a chunk per token with text (or
// with logprobs when asked), and a finish chunk with any held-back text.
class CompletionStreamFraming final : public OpenAiStreamFraming {
 public:
  CompletionStreamFraming(OpenAiStream stream, const CompletionRequest& request)
      : OpenAiStreamFraming(std::move(stream)), request_(request) {}

  void frame_prelude(const Generation& generation, std::string& out) override {
    text_offsets_.assign(generation.samples().size(), 0);
    if (!request_.echo) return;
    for (size_t i = 0; i < text_offsets_.size(); ++i) {
      frame_choice(choice(i, prompt_of(i), nullptr, nullptr), out);
      text_offsets_[i] = prompt_of(i).size();
    }
  }

  void frame_event(const StreamEvent& e, std::string& out) override {
    const size_t index = e.event.sample;
    if (e.event.finished) {
      frame_choice(choice(index, e.event.finish.text, nullptr, json::value(openai_finish_reason(e.event.finish.reason))), out);
      return;
    }
    const std::string& text = e.event.token.text;
    if (text.empty() && request_.num_logprobs < 0) return;  // an incomplete character: nothing to show yet
    json::value logprobs = nullptr;
    if (request_.num_logprobs >= 0)
      logprobs = legacy_logprobs(e.sample, e.token_index, e.token_index + 1, text_offsets_.at(index), request_.num_logprobs);
    text_offsets_.at(index) += text.size();
    frame_choice(choice(index, text, std::move(logprobs), nullptr), out);
  }

 private:
  static json::object choice(size_t index, std::string_view text, json::value logprobs, json::value finish_reason) {
    return json::object{
        {"index", index}, {"text", text}, {"logprobs", std::move(logprobs)}, {"finish_reason", std::move(finish_reason)}};
  }
  const std::string& prompt_of(size_t index) const { return request_.prompts[index / static_cast<size_t>(request_.sampling.n)]; }

  const CompletionRequest& request_;
  std::vector<size_t> text_offsets_;  // per choice: where its next token's text starts
};

CompletionStreamFraming completion_stream_framing(const std::string& id, int64_t created, const std::string& model,
                                                  const CompletionRequest& request) {
  OpenAiStream stream{id, "text_completion", created, model, request.sampling.n, request.sampling.include_usage};
  return CompletionStreamFraming(std::move(stream), request);
}

}  // namespace

ServerResponse openai_list_models(const ServerContext& context) {
  const ModelInfo& model = context.service.model();
  json::object entry{{"id", model.name}, {"object", "model"}, {"created", 0}, {"owned_by", "rankserve"}};
  ServerResponse r;
  r.body = serialize_json(json::object{{"object", "list"}, {"data", json::array{std::move(entry)}}});
  return r;
}

ServerResponse openai_retrieve_model(const ServerContext& context, const RouteParams& params) {
  const ModelInfo& model = context.service.model();
  if (params.model != model.name) {
    ErrorDetail detail;
    detail.param = "model";
    detail.openai_code = "model_not_found";
    throw HttpError(ErrorCode::not_found,
                    fmt::format("request: model '{}' does not exist; this server serves '{}'", params.model, model.name),
                    std::move(detail));
  }
  ServerResponse r;
  r.body = serialize_json(json::object{{"id", model.name}, {"object", "model"}, {"created", 0}, {"owned_by", "rankserve"}});
  return r;
}

CompletionRequest decode_completion_request(const json::object& body) {
  CompletionRequest out;
  out.prompts = read_prompts(body);
  out.sampling = read_openai_sampling(body, {"max_tokens"});
  out.echo = read_bool(body, "echo").value_or(false);
  if (auto v = read_int(body, "logprobs")) {
    if (*v < 0 || *v > 5) throw field_error("logprobs", fmt::format("is {}; expected 0..5", *v));
    out.num_logprobs = static_cast<int>(*v);
  }
  if (out.echo && out.num_logprobs >= 0)
    throw field_error("echo", "with logprobs is not supported (prompt-token logprobs are not computed)");
  if (auto best_of = read_int(body, "best_of"); best_of && *best_of != out.sampling.n) {
    throw field_error("best_of", fmt::format("is {}; rankserve supports only best_of = n", *best_of));
  }
  if (auto suffix = read_string(body, "suffix"); suffix && !suffix->empty()) throw field_error("suffix", "is not supported");
  return out;
}

Task<void> openai_completions(ServerContext& context, Exchange& exchange) {
  const json::object body = parse_json_object(exchange.request().body);
  check_openai_model(context, body);
  const CompletionRequest decoded = decode_completion_request(body);
  const std::vector<std::string>& prompts = decoded.prompts;
  const OpenAiSampling& sampling = decoded.sampling;
  const bool echo = decoded.echo;
  const int num_logprobs = decoded.num_logprobs;

  const std::string id = new_openai_id("cmpl-");
  const int64_t created = unix_time_now();
  const std::string& model = context.service.model().name;
  Generation generation(context.generation(), exchange);
  co_await generation.submit(openai_requests(context, prompts, sampling));
  const auto prompt_of = [&](size_t choice) -> const std::string& { return prompts[choice / static_cast<size_t>(sampling.n)]; };

  if (!sampling.stream) {
    co_await generation.finish_all();
    // Built outside the coroutine body: GCC 12 miscompiles string-literal initializer lists in coroutines.
    ServerResponse response;
    response.body = serialize_json(openai_response_body(
        id, "text_completion", created, model, generation.samples(), sampling.n, [&](size_t i, const SampleState& s) {
          const size_t offset = echo ? prompt_of(i).size() : 0;
          return json::object{
              {"text", echo ? prompt_of(i) + s.text : s.text},
              {"logprobs", num_logprobs >= 0 ? json::value(legacy_logprobs(s, 0, s.tokens.size(), offset, num_logprobs))
                                             : json::value(nullptr)}};
        }));
    co_await exchange.respond(std::move(response));
    co_return;
  }

  // Built outside the coroutine body, like the response above.
  CompletionStreamFraming framing = completion_stream_framing(id, created, model, decoded);
  co_await stream_events(exchange, generation, framing);
}

}  // namespace rankserve::net
