#include "net/openai.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <set>

#include "tests/http/test_client.h"

namespace json = boost::json;
using namespace rankserve;
using namespace rankserve::testing;

namespace {

json::value parse(const std::string& text) { return json::parse(text); }

}  // namespace

TEST_CASE("the model list names the served model owned by rankserve") {
  TestServer t;
  const Reply r = t.get("/v1/models");
  REQUIRE(r.status == 200);
  CHECK(r.json().at("object") == "list");
  CHECK(r.json().at("data").as_array()[0].at("id") == "GPT");
  CHECK(r.json().at("data").as_array()[0].at("owned_by") == "rankserve");
  CHECK(t.get("/v1/models/GPT").status == 200);
  CHECK(t.get("/v1/models/other").status == 404);
}

TEST_CASE("a completion returns text, finish reason and usage in OpenAI's shape") {
  TestServer t;
  const Reply r = t.post("/v1/completions", R"({"model":"GPT","prompt":"one two","max_tokens":3,"user":"me"})");
  REQUIRE(r.status == 200);
  const json::value body = r.json();
  CHECK(std::string(body.at("id").as_string()).rfind("cmpl-", 0) == 0);
  CHECK(body.at("object") == "text_completion");
  CHECK(body.at("created").as_int64() > 1'600'000'000);
  CHECK(body.at("model") == "GPT");
  const auto& choice = body.at("choices").as_array()[0];
  CHECK(choice.at("text") == " w0 w1 w2");
  CHECK(choice.at("index") == 0);
  CHECK(choice.at("finish_reason") == "length");
  CHECK(choice.at("logprobs").is_null());
  CHECK(body.at("usage") == json::object{{"prompt_tokens", 2}, {"completion_tokens", 3}, {"total_tokens", 5}});
  const auto req = t.service.submitted().at(0);
  CHECK_FALSE(req.settings.greedy);  // OpenAI's default temperature 1 samples
  CHECK_FALSE(req.settings.keep_stop);
}

TEST_CASE("completion fields map onto the generation settings") {
  TestServer t;
  REQUIRE(t.post("/v1/completions", R"({"prompt":"x","temperature":0,"top_p":0.5,"stop":"\n","seed":7,"n":2,"max_tokens":2})")
              .status == 200);
  const auto reqs = t.service.submitted();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].settings.greedy);
  CHECK(reqs[0].settings.top_p == doctest::Approx(0.5));
  CHECK(reqs[0].settings.stop == std::vector<std::string>{"\n"});
  CHECK(reqs[0].settings.seed == std::optional<uint64_t>(7));
  CHECK(reqs[1].settings.seed == std::optional<uint64_t>(8));
  CHECK(reqs[0].settings.max_tokens == 2);
  const Reply defaults = t.post("/v1/completions", R"({"prompt":"x"})");
  CHECK(t.service.submitted().back().settings.max_tokens == 16);
  CHECK(defaults.status == 200);
}

TEST_CASE("several prompts and n give prompts x n choices with usage counting each prompt once") {
  TestServer t;
  const Reply r = t.post("/v1/completions", R"({"prompt":["a","b c"],"n":2,"max_tokens":1})");
  REQUIRE(r.status == 200);
  const auto& choices = r.json().at("choices").as_array();
  REQUIRE(choices.size() == 4);
  for (size_t i = 0; i < 4; ++i) CHECK(choices[i].at("index") == i);
  CHECK(r.json().at("usage").at("prompt_tokens") == 3);
  CHECK(r.json().at("usage").at("completion_tokens") == 4);
}

TEST_CASE("echo and logprobs follow the legacy completions shape") {
  TestServer t;
  const Reply echo = t.post("/v1/completions", R"({"prompt":"hi","max_tokens":2,"echo":true})");
  CHECK(echo.json().at("choices").as_array()[0].at("text") == "hi w0 w1");
  const Reply lp = t.post("/v1/completions", R"({"prompt":"hi","max_tokens":2,"logprobs":1})");
  const auto& logprobs = lp.json().at("choices").as_array()[0].at("logprobs");
  CHECK(logprobs.at("tokens") == json::array{" w0", " w1"});
  CHECK(logprobs.at("token_logprobs").as_array()[1].as_double() == doctest::Approx(-0.5));
  CHECK(logprobs.at("text_offset") == json::array{0, 3});
  CHECK(logprobs.at("top_logprobs").as_array()[0].as_object().contains(" w0"));
}

TEST_CASE("a streamed completion sends one chunk per token, a finish chunk, usage when asked, then [DONE]") {
  TestServer t;
  const Reply r =
      t.post("/v1/completions", R"({"prompt":"hi","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}})");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "text/event-stream");
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 6);
  CHECK(parse(events[0]).at("choices").as_array()[0].at("text") == " w0");
  CHECK(parse(events[0]).at("usage").is_null());
  CHECK(parse(events[3]).at("choices").as_array()[0].at("finish_reason") == "length");
  CHECK(parse(events[4]).at("choices").as_array().empty());
  CHECK(parse(events[4]).at("usage").at("completion_tokens") == 3);
  CHECK(events[5] == "[DONE]");
  const Reply plain = t.post("/v1/completions", R"({"prompt":"hi","max_tokens":1,"stream":true})");
  const auto plain_events = sse_data(plain.body);
  CHECK(plain_events.size() == 3);
  CHECK_FALSE(parse(plain_events[0]).as_object().contains("usage"));
}

TEST_CASE("a chat completion renders the documented template and answers as the assistant") {
  TestServer t;
  const Reply r = t.post("/v1/chat/completions",
                         R"({"model":"GPT","messages":[{"role":"system","content":"Be brief."},
                              {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":" there"}]}],
                             "max_completion_tokens":2,"temperature":0})");
  REQUIRE(r.status == 200);
  const auto req = t.service.submitted().at(0);
  CHECK(req.prompt == "system: Be brief.\nuser: Hi there\nassistant:");
  CHECK(req.settings.greedy);
  CHECK(req.settings.max_tokens == 2);
  CHECK(req.settings.max_tokens_field == "max_completion_tokens");
  CHECK(std::find(req.settings.stop.begin(), req.settings.stop.end(), "\nuser:") != req.settings.stop.end());
  const json::value body = r.json();
  CHECK(std::string(body.at("id").as_string()).rfind("chatcmpl-", 0) == 0);
  CHECK(body.at("object") == "chat.completion");
  const auto& choice = body.at("choices").as_array()[0];
  CHECK(choice.at("message").at("role") == "assistant");
  CHECK(choice.at("message").at("content") == " w0 w1");
  CHECK(choice.at("finish_reason") == "length");
  CHECK(body.at("usage").at("total_tokens") == body.at("usage").at("prompt_tokens").as_int64() + 2);
}

TEST_CASE("chat logprobs list each chosen token with its bytes") {
  TestServer t;
  const Reply r = t.post("/v1/chat/completions",
                         R"({"messages":[{"role":"user","content":"x"}],"max_tokens":2,"logprobs":true,"top_logprobs":2})");
  REQUIRE(r.status == 200);
  const auto& content = r.json().at("choices").as_array()[0].at("logprobs").at("content").as_array();
  REQUIRE(content.size() == 2);
  CHECK(content[0].at("token") == " w0");
  CHECK(content[0].at("bytes") == json::array{32, 119, 48});
  CHECK(content[1].at("top_logprobs").as_array().size() == 1);
}

TEST_CASE("a streamed chat sends the role first, content deltas, the finish chunk, usage and [DONE]") {
  TestServer t;
  const Reply r = t.post(
      "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"x"}],"max_tokens":2,"stream":true,"stream_options":{"include_usage":true}})");
  REQUIRE(r.status == 200);
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 6);
  const auto first = parse(events[0]);
  CHECK(first.at("object") == "chat.completion.chunk");
  CHECK(first.at("choices").as_array()[0].at("delta").at("role") == "assistant");
  CHECK(parse(events[1]).at("choices").as_array()[0].at("delta").at("content") == " w0");
  CHECK(parse(events[2]).at("choices").as_array()[0].at("delta").at("content") == " w1");
  const auto last = parse(events[3]).at("choices").as_array()[0];
  CHECK(last.at("delta").as_object().empty());
  CHECK(last.at("finish_reason") == "length");
  CHECK(parse(events[4]).at("usage").at("completion_tokens") == 2);
  CHECK(events[5] == "[DONE]");
  std::set<std::string> ids;
  for (size_t i = 0; i < 5; ++i) ids.insert(std::string(parse(events[i]).at("id").as_string()));
  CHECK(ids.size() == 1);
}

TEST_CASE("a stop finish is reported as stop") {
  TestServer t;
  FakeScript s;
  s.stop_after_tokens = 1;
  t.service.set_script(s);
  const Reply r = t.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":5})");
  CHECK(r.json().at("choices").as_array()[0].at("finish_reason") == "stop");
}

TEST_CASE("an error in the middle of a stream becomes an error event followed by [DONE]") {
  TestServer t;
  FakeScript s;
  s.fail_after_tokens = 1;
  t.service.set_script(s);
  const Reply r = t.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":5,"stream":true})");
  REQUIRE(r.status == 200);
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 4);
  CHECK(parse(events[2]).at("error").at("type") == "service_unavailable");
  CHECK(events[3] == "[DONE]");
}

TEST_CASE("invalid OpenAI requests get 400 with param naming the field") {
  TestServer t;
  struct Case {
    std::string target;
    std::string body;
    std::string param;
  };
  const std::vector<Case> cases = {
      {"/v1/completions", "{oops", "body"},
      {"/v1/completions", R"({"max_tokens":3})", "prompt"},
      {"/v1/completions", R"({"prompt":[1,2]})", "prompt"},
      {"/v1/completions", R"({"prompt":"x","max_tokens":"3"})", "max_tokens"},
      {"/v1/completions", R"({"prompt":"x","max_tokens":0})", "max_tokens"},
      {"/v1/completions", R"({"prompt":"x","temperature":3})", "temperature"},
      {"/v1/completions", R"({"prompt":"x","top_p":0})", "top_p"},
      {"/v1/completions", R"({"prompt":"x","stop":[1]})", "stop"},
      {"/v1/completions", R"({"prompt":"x","n":0})", "n"},
      {"/v1/completions", R"({"prompt":"x","stream":"yes"})", "stream"},
      {"/v1/completions", R"({"prompt":"x","stream_options":{"include_usage":1}})", "stream_options.include_usage"},
      {"/v1/completions", R"({"prompt":"x","logprobs":9})", "logprobs"},
      {"/v1/completions", R"({"prompt":"x","presence_penalty":0.5})", "presence_penalty"},
      {"/v1/chat/completions", R"({"messages":[]})", "messages"},
      {"/v1/chat/completions", R"({"messages":[{"role":"robot","content":"x"}]})", "messages[0].role"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
       "messages[0].content[0].type"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"logprobs":"yes"})", "logprobs"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", "top_logprobs"},
  };
  for (const Case& c : cases) {
    const Reply r = t.post(c.target, c.body);
    CHECK_MESSAGE(r.status == 400, c.body);
    const auto& error = r.json().at("error");
    CHECK_MESSAGE(error.at("param") == json::value(c.param), c.body << " -> " << r.body);
    CHECK(error.at("type") == "invalid_request_error");
    CHECK(error.at("message").as_string().size() > 0);
  }
  CHECK(t.service.submitted().empty());
}

TEST_CASE("an unknown model name gets an OpenAI-shaped 404") {
  TestServer t;
  const Reply r = t.post("/v1/completions", R"({"model":"gpt-4","prompt":"x"})");
  CHECK(r.status == 404);
  CHECK(r.json().at("error").at("code") == "model_not_found");
  CHECK(r.json().at("error").at("param") == "model");
}

TEST_CASE("OpenAI endpoints answer overload with 429 and Retry-After, unavailability with 503, long prompts with 400") {
  TestServer t;
  FakeScript s;
  s.overloaded = true;
  t.service.set_script(s);
  const Reply full = t.post("/v1/completions", R"({"prompt":"x"})");
  CHECK(full.status == 429);
  CHECK(full.header("Retry-After") == "1");
  CHECK(full.json().at("error").at("code") == "rate_limit_exceeded");
  s.overloaded = false;
  s.unavailable = true;
  t.service.set_script(s);
  CHECK(t.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}]})").status == 503);
  s.unavailable = false;
  s.max_prompt_words = 1;
  t.service.set_script(s);
  const Reply long_prompt = t.post("/v1/completions", R"({"prompt":"one two three"})");
  CHECK(long_prompt.status == 400);
  CHECK(std::string(long_prompt.json().at("error").at("message").as_string()).find("context") != std::string::npos);
}

TEST_CASE("a chat message without text gets 400 naming its content") {
  TestServer t;
  struct Case {
    std::string messages;
    std::string param;
  };
  const std::vector<Case> cases = {
      {R"([{"role":"user"}])", "messages[0].content"},
      {R"([{"role":"system","content":"Be brief."},{"role":"assistant","content":null}])", "messages[1].content"},
      {R"([{"role":"user","content":[]}])", "messages[0].content"},
      {R"([{"role":"user","content":[{"type":"text"}]}])", "messages[0].content[0].text"},
      {R"([{"role":"user","content":[{"type":"text","text":null}]}])", "messages[0].content[0].text"},
      {R"([{"content":"x"}])", "messages[0].role"},
  };
  for (const Case& c : cases) {
    const Reply r = t.post("/v1/chat/completions", R"({"messages":)" + c.messages + "}");
    CHECK_MESSAGE(r.status == 400, c.messages);
    CHECK_MESSAGE(r.json().at("error").at("param") == json::value(c.param), c.messages << " -> " << r.body);
  }
  CHECK(t.service.submitted().empty());
  CHECK(t.post("/v1/chat/completions", R"({"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":1})")
            .status == 200);
}
