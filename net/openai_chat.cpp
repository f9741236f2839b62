// POST /v1/chat/completions: messages rendered with rankserve's plain chat template (docs/openai.md).
#include <fmt/format.h>

#include <boost/json.hpp>

#include "net/json_fields.h"
#include "net/openai.h"
#include "net/openai_common.h"
#include "net/openai_decode.h"

namespace rankserve::net {

namespace json = boost::json;

namespace {

// The template: one "<role>: <content>\n" line per message, then "assistant:" for the model to
// continue; "\nuser:" ends the reply (the model would otherwise write the user's next turn).
constexpr std::string_view kAssistantCue = "assistant:";
constexpr std::string_view kTurnStop = "\nuser:";

// The message's text. Content is required for every role: rankserve has no tools, so there are no
// assistant turns made of tool calls only (OpenAI's one case of a null content).
std::string message_content(const json::object& message, const std::string& field) {
  const json::value* content = find_field(message, "content");
  if (content == nullptr) throw field_error(field, "is missing or null; expected a string or an array of text parts");
  if (content->is_string()) return std::string(content->as_string());
  if (!content->is_array()) throw field_error(field, "is neither a string nor an array of content parts");
  if (content->as_array().empty()) throw field_error(field, "is an empty array; expected at least one text part");
  std::string out;
  for (size_t i = 0; i < content->as_array().size(); ++i) {
    const json::value& part = content->as_array()[i];
    const std::string where = fmt::format("{}[{}]", field, i);
    if (!part.is_object()) throw field_error(where, "is not a content part object");
    const auto type = read_string(part.as_object(), "type", where + ".type");
    if (type != "text")
      throw field_error(where + ".type", fmt::format("is '{}'; only text parts are supported", type.value_or("")));
    const auto text = read_string(part.as_object(), "text", where + ".text");
    if (!text) throw field_error(where + ".text", "is missing; a text part needs its text");
    out += *text;
  }
  return out;
}

std::string render_chat(const json::object& body) {
  const json::value* messages = find_field(body, "messages");
  if (messages == nullptr || !messages->is_array() || messages->as_array().empty()) {
    throw field_error("messages", "is missing or empty; expected an array of {role, content} objects");
  }
  std::string prompt;
  for (size_t i = 0; i < messages->as_array().size(); ++i) {
    const json::value& item = messages->as_array()[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!item.is_object()) throw field_error(where, "is not an object");
    const auto role = read_string(item.as_object(), "role", where + ".role");
    if (!role) throw field_error(where + ".role", "is missing");
    if (*role != "system" && *role != "developer" && *role != "user" && *role != "assistant" && *role != "tool") {
      throw field_error(where + ".role", fmt::format("is '{}'; expected system, developer, user, assistant or tool", *role));
    }
    prompt += fmt::format("{}: {}\n", *role, message_content(item.as_object(), where + ".content"));
  }
  prompt += kAssistantCue;
  return prompt;
}

json::object chat_logprob(const TokenEvent& t, int num_top) {
  json::array bytes;
  for (unsigned char c : t.token) bytes.emplace_back(static_cast<int>(c));
  json::array top;
  if (num_top > 0) top.push_back(json::object{{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes}});
  return json::object{{"token", t.token}, {"logprob", t.logprob}, {"bytes", std::move(bytes)}, {"top_logprobs", std::move(top)}};
}

json::object chat_logprobs(const SampleState& s, size_t from, size_t to, int num_top) {
  json::array content;
  for (size_t i = from; i < to; ++i) content.push_back(chat_logprob(s.tokens[i], num_top));
  return json::object{{"content", std::move(content)}, {"refusal", nullptr}};
}

json::object role_delta() { return json::object{{"role", "assistant"}, {"content", ""}}; }
json::object content_delta(std::string_view text) { return json::object{{"content", text}}; }

// A streamed chat: the first chunk of each choice carries the role and empty content (as OpenAI's),
// then a content delta per token with text (or with logprobs when asked), then any held-back text
// and the finish chunk, whose delta is empty.
class ChatStreamFraming final : public OpenAiStreamFraming {
 public:
  ChatStreamFraming(OpenAiStream stream, const ChatRequest& request)
      : OpenAiStreamFraming(std::move(stream)), request_(request) {}

  void frame_prelude(const Generation& generation, std::string& out) override {
    for (size_t i = 0; i < generation.samples().size(); ++i) frame_choice(choice(i, role_delta(), nullptr, nullptr), out);
  }

  void frame_event(const StreamEvent& e, std::string& out) override {
    const size_t index = e.event.sample;
    if (e.event.finished) {
      if (!e.event.finish.text.empty()) frame_choice(choice(index, content_delta(e.event.finish.text), nullptr, nullptr), out);
      frame_choice(choice(index, json::object{}, nullptr, json::value(openai_finish_reason(e.event.finish.reason))), out);
      return;
    }
    if (e.event.token.text.empty() && !request_.logprobs) return;  // an incomplete character: nothing to show yet
    json::value logprobs = nullptr;
    if (request_.logprobs) logprobs = chat_logprobs(e.sample, e.token_index, e.token_index + 1, request_.num_top);
    frame_choice(choice(index, content_delta(e.event.token.text), std::move(logprobs), nullptr), out);
  }

 private:
  static json::object choice(size_t index, json::object delta, json::value logprobs, json::value finish_reason) {
    return json::object{{"index", index},
                        {"delta", std::move(delta)},
                        {"logprobs", std::move(logprobs)},
                        {"finish_reason", std::move(finish_reason)}};
  }

  const ChatRequest& request_;
};

ChatStreamFraming chat_stream_framing(const std::string& id, int64_t created, const std::string& model,
                                      const ChatRequest& request) {
  OpenAiStream stream{id, "chat.completion.chunk", created, model, request.sampling.n, request.sampling.include_usage};
  return ChatStreamFraming(std::move(stream), request);
}

}  // namespace

ChatRequest decode_chat_request(const json::object& body) {
  ChatRequest out;
  out.prompt = render_chat(body);
  out.sampling = read_openai_sampling(body, {"max_completion_tokens", "max_tokens"});
  out.sampling.settings.stop.emplace_back(kTurnStop);
  out.logprobs = read_bool(body, "logprobs").value_or(false);
  if (auto v = read_int(body, "top_logprobs")) {
    if (*v < 0 || *v > 20) throw field_error("top_logprobs", fmt::format("is {}; expected 0..20", *v));
    if (!out.logprobs) throw field_error("top_logprobs", "needs logprobs: true");
    out.num_top = static_cast<int>(*v);
  }
  if (const json::value* tools = find_field(body, "tools");
      tools != nullptr && !(tools->is_array() && tools->as_array().empty())) {
    throw field_error("tools", "are not supported");
  }
  if (const json::object* format = read_object(body, "response_format")) {
    if (read_string(*format, "type", "response_format.type").value_or("text") != "text") {
      throw field_error("response_format", "only {\"type\": \"text\"} is supported");
    }
  }
  return out;
}

Task<void> openai_chat_completions(ServerContext& context, Exchange& exchange) {
  const json::object body = parse_json_object(exchange.request().body);
  check_openai_model(context, body);
  const ChatRequest decoded = decode_chat_request(body);
  const std::string& prompt = decoded.prompt;
  const OpenAiSampling& sampling = decoded.sampling;
  const bool logprobs = decoded.logprobs;
  const int num_top = decoded.num_top;

  const std::string id = new_openai_id("chatcmpl-");
  const int64_t created = unix_time_now();
  const std::string& model = context.service.model().name;
  Generation generation(context.generation(), exchange);
  // Built outside the coroutine body: GCC 12 rejects an initializer list inside a co_await's operand.
  std::vector<TextRequest> requests = [&] { return openai_requests(context, {prompt}, sampling); }();
  co_await generation.submit(std::move(requests));

  if (!sampling.stream) {
    co_await generation.finish_all();
    // Built outside the coroutine body: GCC 12 miscompiles string-literal initializer lists in coroutines.
    ServerResponse response;
    response.body = serialize_json(openai_response_body(
        id, "chat.completion", created, model, generation.samples(), sampling.n, [&](size_t, const SampleState& s) {
          return json::object{
              {"message", json::object{{"role", "assistant"}, {"content", s.text}, {"refusal", nullptr}}},
              {"logprobs", logprobs ? json::value(chat_logprobs(s, 0, s.tokens.size(), num_top)) : json::value(nullptr)}};
        }));
    co_await exchange.respond(std::move(response));
    co_return;
  }

  // Built outside the coroutine body, like the response above.
  ChatStreamFraming framing = chat_stream_framing(id, created, model, decoded);
  co_await stream_events(exchange, generation, framing);
}

}  // namespace rankserve::net
