#include "net/kserve.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <cstring>

#include "net/tensor.h"
#include "tests/http/test_client.h"

namespace json = boost::json;
using namespace rankserve;
using namespace rankserve::testing;

namespace {

std::string infer_body(const json::array& inputs, const json::object& extra = {}) {
  json::object body = extra;
  body["inputs"] = inputs;
  return json::serialize(body);
}

json::object bytes_input(const std::string& name, const std::vector<std::string>& values, bool nested = true) {
  json::array data;
  for (const auto& v : values) data.emplace_back(v);
  json::array shape{static_cast<int64_t>(values.size())};
  if (nested) shape.emplace_back(1);
  return json::object{{"name", name}, {"datatype", "BYTES"}, {"shape", shape}, {"data", data}};
}

json::object scalar_input(const std::string& name, const std::string& datatype, const json::array& data) {
  return json::object{
      {"name", name}, {"datatype", datatype}, {"shape", json::array{static_cast<int64_t>(data.size()), 1}}, {"data", data}};
}

const json::object& output_named(const json::value& response, const std::string& name) {
  for (const json::value& o : response.at("outputs").as_array()) {
    if (o.at("name").as_string() == name) return o.as_object();
  }
  FAIL("no output " << name << " in " << json::serialize(response));
  throw;
}

std::string error_of(const Reply& r) { return std::string(r.json().at("error").as_string()); }

// An infer request whose `prompts` travel as binary BYTES (raw bytes, no JSON escaping); JSON outputs.
Reply post_binary_prompts(TestServer& t, const std::vector<std::string>& values) {
  net::Tensor prompts;
  prompts.datatype = net::DataType::bytes;
  prompts.strings = values;
  const std::string raw = net::encode_tensor_bytes(prompts);
  const std::string header =
      json::serialize(json::object{{"inputs", json::array{json::object{{"name", "prompts"},
                                                                       {"datatype", "BYTES"},
                                                                       {"shape", {static_cast<int64_t>(values.size()), 1}},
                                                                       {"parameters", {{"binary_data_size", raw.size()}}}}}}});
  return t.post(
      "/v2/models/GPT/infer", header + raw,
      {{"Inference-Header-Content-Length", std::to_string(header.size())}, {"Content-Type", "application/octet-stream"}});
}

}  // namespace

TEST_CASE("server metadata names rankserve and its extensions") {
  TestServer t;
  const Reply r = t.get("/v2");
  CHECK(r.status == 200);
  CHECK(r.json().at("name").as_string() == "rankserve");
  CHECK(r.json().at("version").as_string().size() > 0);
  const auto& ext = r.json().at("extensions").as_array();
  CHECK(std::find(ext.begin(), ext.end(), json::value("binary_tensor_data")) != ext.end());
}

TEST_CASE("model metadata, readiness and config follow the NeMo GPT contract") {
  TestServer t;
  const Reply meta = t.get("/v2/models/GPT");
  CHECK(meta.status == 200);
  CHECK(meta.json().at("name").as_string() == "GPT");
  CHECK(meta.json().at("versions") == json::array{"1"});
  bool has_prompts = false;
  for (const auto& in : meta.json().at("inputs").as_array()) {
    if (in.at("name") == "prompts") {
      has_prompts = true;
      CHECK(in.at("datatype") == "BYTES");
      CHECK(in.at("shape") == json::array{-1, 1});
    }
  }
  CHECK(has_prompts);
  CHECK(t.get("/v2/models/GPT/versions/1").status == 200);
  CHECK(t.get("/v2/models/GPT/ready").status == 200);
  CHECK(t.get("/v2/models/GPT/versions/1/ready").status == 200);
  const Reply config = t.get("/v2/models/GPT/config");
  CHECK(config.status == 200);
  CHECK(config.json().at("max_batch_size") == 128);
  CHECK(config.json().at("input").as_array()[1].at("data_type") == "TYPE_STRING");
  CHECK(config.json().at("input").as_array()[1].at("optional") == false);
  CHECK(config.json().at("output").as_array()[2].at("data_type") == "TYPE_INT32");
}

TEST_CASE("an unknown model or version gets 404 naming it") {
  TestServer t;
  const Reply model = t.get("/v2/models/Nope");
  CHECK(model.status == 404);
  CHECK(error_of(model).find("'Nope'") != std::string::npos);
  const Reply version = t.get("/v2/models/GPT/versions/2");
  CHECK(version.status == 404);
  CHECK(error_of(version).find("version '2'") != std::string::npos);
  CHECK(t.post("/v2/models/Nope/infer", "{}").status == 404);
  CHECK(t.post("/v2/models/GPT/versions/3/infer", "{}").status == 404);
}

TEST_CASE("a GPT infer with only prompts uses NeMo's defaults for every optional input") {
  TestServer t;
  const Reply r = t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"1 2 3"})}));
  REQUIRE(r.status == 200);
  const auto requests = t.service.submitted();
  REQUIRE(requests.size() == 1);
  const GenerationSettings& s = requests[0].settings;
  CHECK(s.greedy);
  CHECK(s.temperature == 1.0f);
  CHECK(s.top_k == 0);
  CHECK(s.top_p == 1.0f);
  CHECK(s.repetition_penalty == 1.0f);
  CHECK(s.add_bos == std::optional<bool>(true));
  CHECK(s.stop == std::vector<std::string>{"<|endoftext|>"});
  CHECK(s.keep_stop);
  CHECK(s.min_tokens == 0);
  CHECK(s.max_tokens == 30);
  CHECK(s.max_tokens_field == "input 'max_length'");
  const json::value body = r.json();
  CHECK(body.at("model_name") == "GPT");
  CHECK(body.at("model_version") == "1");
  const auto& sentences = output_named(body, "sentences");
  CHECK(sentences.at("datatype") == "BYTES");
  CHECK(sentences.at("shape") == json::array{1, 1});
  CHECK(sentences.at("data").as_array()[0] == json::value("1 2 3" + FakeService::continuation(30)));
  const auto& ids = output_named(body, "token_ids");
  CHECK(ids.at("datatype") == "INT32");
  CHECK(ids.at("shape") == json::array{1, 30});
  CHECK(ids.at("data").as_array()[0] == 1000);
  CHECK(output_named(body, "tokens").at("data").as_array()[1] == " w1");
  bool has_logprob = false;
  for (const auto& o : body.at("outputs").as_array()) has_logprob = has_logprob || o.at("name") == "logprob";
  CHECK_FALSE(has_logprob);
}

TEST_CASE("a GPT batch maps every NeMo input per sample and runs each sample as its own request") {
  TestServer t;
  const json::array inputs{
      scalar_input("tasks", "BYTES", {"text_generation", "text_generation"}),
      bytes_input("prompts", {"Thank you for", "Q: Are you going for a lunch?"}),
      scalar_input("max_length", "INT32", {4, 6}),
      scalar_input("min_length", "INT32", {2, 9}),
      scalar_input("use_greedy", "BOOL", {false, true}),
      scalar_input("temperature", "FP32", {0.5, 1.0}),
      scalar_input("top_k", "INT32", {5, 0}),
      scalar_input("top_p", "FP32", {0.9, 1.0}),
      scalar_input("repetition_penalty", "FP32", {1.2, 1.0}),
      scalar_input("add_BOS", "BOOL", {false, true}),
      scalar_input("all_probs", "BOOL", {false, false}),
      scalar_input("compute_logprob", "BOOL", {true, false}),
      json::object{
          {"name", "end_strings"}, {"datatype", "BYTES"}, {"shape", {2, 2}}, {"data", {"<|endoftext|>", "\n", "STOP", ""}}},
  };
  const Reply r = t.post("/v2/models/GPT/infer", infer_body(inputs));
  REQUIRE(r.status == 200);
  const auto requests = t.service.submitted();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].settings.max_tokens == 4);
  CHECK(requests[0].settings.min_tokens == 2);
  CHECK_FALSE(requests[0].settings.greedy);
  CHECK(requests[0].settings.temperature == 0.5f);
  CHECK(requests[0].settings.top_k == 5);
  CHECK(requests[0].settings.top_p == doctest::Approx(0.9));
  CHECK(requests[0].settings.repetition_penalty == doctest::Approx(1.2));
  CHECK(requests[0].settings.add_bos == std::optional<bool>(false));
  CHECK(requests[0].settings.stop == std::vector<std::string>{"<|endoftext|>", "\n"});
  CHECK(requests[1].settings.max_tokens == 6);
  CHECK(requests[1].settings.min_tokens == 6);  // clipped to max_length
  CHECK(requests[1].settings.stop == std::vector<std::string>{"STOP"});
  const json::value body = r.json();
  const auto& sentences = output_named(body, "sentences").at("data").as_array();
  CHECK(sentences[0] == json::value("Thank you for" + FakeService::continuation(4)));
  CHECK(sentences[1] == json::value("Q: Are you going for a lunch?" + FakeService::continuation(6)));
  const auto& ids = output_named(body, "token_ids");
  CHECK(ids.at("shape") == json::array{2, 6});
  CHECK(ids.at("data").as_array()[4] == -1);  // row 0 padded after 4 tokens
  const auto& logprob = output_named(body, "logprob");
  CHECK(logprob.at("datatype") == "FP32");
  CHECK(logprob.at("data").as_array()[0].as_double() == doctest::Approx(-0.25));
}

TEST_CASE("an OPT batch of different prompt lengths returns each prompt with its continuation") {
  TestServer t(opt_model_info());
  const json::array inputs{bytes_input("input", {"The capital of Poland is", "Hi", "one two three four five six seven"}),
                           scalar_input("output_length", "INT64", {1, 3, 2})};
  const Reply r = t.post("/v2/models/OPT/infer", infer_body(inputs));
  REQUIRE(r.status == 200);
  const auto& output = output_named(r.json(), "output");
  CHECK(output.at("datatype") == "BYTES");
  CHECK(output.at("shape") == json::array{3, 1});
  CHECK(output.at("data") ==
        json::array{"The capital of Poland is w0", "Hi w0 w1 w2", "one two three four five six seven w0 w1"});
  for (const auto& req : t.service.submitted()) CHECK(req.settings.greedy);
  CHECK(t.get("/v2/models/OPT/config").json().at("max_batch_size") == 256);
}

TEST_CASE("an OPT output_length of 0 returns the prompt alone without running it, as the OPT example does") {
  TestServer t(opt_model_info());
  const json::array inputs{bytes_input("input", {"The capital of Poland is", "Hi"}),
                           scalar_input("output_length", "INT64", {0, 2})};
  const Reply r = t.post("/v2/models/OPT/infer", infer_body(inputs));
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(output_named(r.json(), "output").at("data") == json::array{"The capital of Poland is", "Hi w0 w1"});
  REQUIRE(t.service.submitted().size() == 1);
  CHECK(t.service.submitted()[0].prompt == "Hi");
  const Reply alone =
      t.post("/v2/models/OPT/infer", infer_body({bytes_input("input", {"x y"}), scalar_input("output_length", "INT64", {0})}));
  REQUIRE_MESSAGE(alone.status == 200, alone.body);
  CHECK(output_named(alone.json(), "output").at("data") == json::array{"x y"});
  CHECK(t.service.submitted().size() == 1);
  const Reply negative =
      t.post("/v2/models/OPT/infer", infer_body({bytes_input("input", {"x"}), scalar_input("output_length", "INT64", {-1})}));
  CHECK(negative.status == 400);
  CHECK(error_of(negative).find("'output_length'") != std::string::npos);
}

TEST_CASE("a NeMo max_length above the model's context is clipped to it, as NeMo does, whatever the prompt's length") {
  TestServer t;  // max_context 2048
  t.service.set_script(FakeScript{.stop_after_tokens = 1});
  const json::array inputs{bytes_input("prompts", {"short", "a much longer prompt of words"}),
                           scalar_input("max_length", "INT32", {5000, 2048})};
  const Reply r = t.post("/v2/models/GPT/infer", infer_body(inputs));
  REQUIRE_MESSAGE(r.status == 200, r.body);
  REQUIRE(t.service.submitted().size() == 2);
  CHECK(t.service.submitted()[0].settings.max_tokens == 2048);
  CHECK(t.service.submitted()[1].settings.max_tokens == 2048);
  // The generate extension clips NeMo's max_length alike; its max_tokens keeps OpenAI's meaning (refused by the service).
  REQUIRE(t.post("/v2/models/GPT/generate", R"({"text_input":"short","max_length":5000})").status == 200);
  CHECK(t.service.submitted().back().settings.max_tokens == 2048);
  REQUIRE(t.post("/v2/models/GPT/generate", R"({"text_input":"short","max_tokens":5000})").status == 200);
  CHECK(t.service.submitted().back().settings.max_tokens == 5000);
}

TEST_CASE("request parameters seed every contract and make OPT sample") {
  TestServer t(opt_model_info());
  const json::array inputs{bytes_input("input", {"a", "a"})};
  REQUIRE(t.post("/v2/models/OPT/infer",
                 infer_body(inputs, json::object{{"parameters", {{"seed", 5}, {"temperature", 0.8}, {"top_p", 0.9}}}}))
              .status == 200);
  const auto reqs = t.service.submitted();
  REQUIRE(reqs.size() == 2);
  CHECK_FALSE(reqs[0].settings.greedy);
  CHECK(reqs[0].settings.temperature == doctest::Approx(0.8));
  CHECK(reqs[0].settings.top_p == doctest::Approx(0.9));
  CHECK(reqs[0].settings.seed == std::optional<uint64_t>(5));
  CHECK(reqs[1].settings.seed == std::optional<uint64_t>(6));
  CHECK(reqs[0].settings.max_tokens == 16);  // output_length is optional
}

TEST_CASE("the requested outputs alone are returned and an unknown one is a 400 naming it") {
  TestServer t;
  const Reply r = t.post(
      "/v2/models/GPT/infer",
      infer_body({bytes_input("prompts", {"a"})}, json::object{{"outputs", json::array{json::object{{"name", "sentences"}}}}}));
  REQUIRE(r.status == 200);
  CHECK(r.json().at("outputs").as_array().size() == 1);
  const Reply bad =
      t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"a"})},
                                                json::object{{"outputs", json::array{json::object{{"name", "full_logprob"}}}}}));
  CHECK(bad.status == 400);
  CHECK(error_of(bad).find("full_logprob") != std::string::npos);
}

TEST_CASE("invalid infer requests get 400 naming the input or field") {
  TestServer t;
  struct Case {
    std::string body;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"{not json", "body"},
      {"[1,2]", "body"},
      {R"({"inputs":{}})", "inputs"},
      {infer_body({}), "'prompts'"},
      {infer_body({scalar_input("prompts", "INT32", {1})}), "'prompts'"},
      {infer_body({json::object{{"name", "prompts"}, {"datatype", "BYTES"}, {"shape", {2, 1}}, {"data", {"a"}}}}), "'prompts'"},
      {infer_body({json::object{{"name", "prompts"}, {"datatype", "FP16"}, {"shape", {1, 1}}, {"data", {"a"}}}}), "FP16"},
      {infer_body({bytes_input("prompts", {"a"}), scalar_input("max_length", "BYTES", {"5"})}), "'max_length'"},
      {infer_body({bytes_input("prompts", {"a"}), scalar_input("max_length", "INT32", {0})}), "'max_length'"},
      {infer_body({bytes_input("prompts", {"a"}), scalar_input("top_p", "FP32", {1.5})}), "'top_p'"},
      {infer_body({bytes_input("prompts", {"a"}), scalar_input("use_greedy", "BOOL", {1})}), "'use_greedy'"},
      {infer_body({bytes_input("prompts", {"a", "b"}), scalar_input("max_length", "INT32", {5})}), "'max_length'"},
      {infer_body({bytes_input("prompts", {"a"}), scalar_input("bogus", "INT32", {5})}), "'bogus'"},
      {infer_body({bytes_input("prompts", {"a"}), scalar_input("use_greedy", "BOOL", {false}),
                   scalar_input("temperature", "FP32", {0})}),
       "'temperature'"},
      {R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["a"]}],"parameters":{"timeout":"soon"}})",
       "parameters.timeout"},
  };
  for (const Case& c : cases) {
    const Reply r = t.post("/v2/models/GPT/infer", c.body);
    CHECK_MESSAGE(r.status == 400, c.body);
    CHECK_MESSAGE(error_of(r).find(c.mentions) != std::string::npos, c.body << " -> " << r.body);
  }
  CHECK(t.service.submitted().empty());
}

TEST_CASE("a batch over max_batch_size gets 400") {
  ModelInfo model = gpt_model_info();
  model.max_batch_size = 2;
  TestServer t(model);
  const Reply r = t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"a", "b", "c"})}));
  CHECK(r.status == 400);
  CHECK(error_of(r).find("max_batch_size is 2") != std::string::npos);
}

TEST_CASE("binary tensors are decoded from the request and returned when asked") {
  TestServer t;
  net::Tensor prompts;
  prompts.datatype = net::DataType::bytes;
  prompts.strings = {"x y", std::string("caf\xc3\xa9", 5)};
  net::Tensor max_length;
  max_length.datatype = net::DataType::int32;
  max_length.numbers = {2, 3};
  const std::string p = net::encode_tensor_bytes(prompts);
  const std::string m = net::encode_tensor_bytes(max_length);
  const json::object header{
      {"inputs",
       json::array{
           json::object{
               {"name", "prompts"}, {"datatype", "BYTES"}, {"shape", {2, 1}}, {"parameters", {{"binary_data_size", p.size()}}}},
           json::object{{"name", "max_length"},
                        {"datatype", "INT32"},
                        {"shape", {2, 1}},
                        {"parameters", {{"binary_data_size", m.size()}}}}}},
      {"outputs", json::array{json::object{{"name", "sentences"}, {"parameters", {{"binary_data", true}}}},
                              json::object{{"name", "token_ids"}}}},
  };
  const std::string json_part = json::serialize(header);
  const Reply r = t.post(
      "/v2/models/GPT/infer", json_part + p + m,
      {{"Inference-Header-Content-Length", std::to_string(json_part.size())}, {"Content-Type", "application/octet-stream"}});
  REQUIRE_MESSAGE(r.status == 200, r.body);
  const size_t json_size = std::stoul(r.header("Inference-Header-Content-Length"));
  const json::value response = json::parse(r.body.substr(0, json_size));
  const auto& sentences = output_named(response, "sentences");
  CHECK(sentences.find("data") == sentences.end());
  const size_t size = sentences.at("parameters").at("binary_data_size").as_int64();
  const std::string raw = r.body.substr(json_size);
  CHECK(raw.size() == size);
  // Two length-prefixed strings.
  uint32_t len = 0;
  std::memcpy(&len, raw.data(), 4);
  CHECK(raw.substr(4, len) == "x y w0 w1");
  std::memcpy(&len, raw.data() + 4 + 9, 4);
  CHECK(raw.substr(4 + 9 + 4, len) == std::string("caf\xc3\xa9", 5) + " w0 w1 w2");
  CHECK(output_named(response, "token_ids").at("data").as_array().size() == 6);  // JSON, as not asked binary
}

TEST_CASE("binary_data_output makes every output binary") {
  TestServer t;
  const Reply r = t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"a"})},
                                                            json::object{{"parameters", {{"binary_data_output", true}}}}));
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "application/octet-stream");
  const size_t json_size = std::stoul(r.header("Inference-Header-Content-Length"));
  const json::value response = json::parse(r.body.substr(0, json_size));
  size_t total = 0;
  for (const auto& o : response.at("outputs").as_array()) total += o.at("parameters").at("binary_data_size").as_int64();
  CHECK(total == r.body.size() - json_size);
}

TEST_CASE("binary sections that do not add up get 400") {
  TestServer t;
  const std::string json_part =
      R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"parameters":{"binary_data_size":10}}]})";
  const Reply short_body =
      t.post("/v2/models/GPT/infer", json_part + "abc", {{"Inference-Header-Content-Length", std::to_string(json_part.size())}});
  CHECK(short_body.status == 400);
  CHECK(error_of(short_body).find("'prompts'") != std::string::npos);
  const Reply bad_header = t.post("/v2/models/GPT/infer", json_part, {{"Inference-Header-Content-Length", "many"}});
  CHECK(bad_header.status == 400);
  CHECK(error_of(bad_header).find("Inference-Header-Content-Length") != std::string::npos);
}

TEST_CASE("the KServe timeout parameter is microseconds and sets the deadline") {
  TestServer t;
  const auto before = Clock::now();
  REQUIRE(t.post("/v2/models/GPT/infer",
                 infer_body({bytes_input("prompts", {"a"})}, json::object{{"parameters", {{"timeout", 5'000'000}}}}))
              .status == 200);
  const auto deadline = t.service.submitted().at(0).deadline;
  CHECK(deadline > before + 4s);
  CHECK(deadline < before + 6s + 1s);
}

TEST_CASE("a full queue gets 429 with Retry-After and a not-ready service gets 503") {
  TestServer t;
  FakeScript s;
  s.overloaded = true;
  t.service.set_script(s);
  const Reply full = t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"a"})}));
  CHECK(full.status == 429);
  CHECK(full.header("Retry-After") == "1");
  CHECK(error_of(full).find("queue is full") != std::string::npos);
  s.overloaded = false;
  s.unavailable = true;
  t.service.set_script(s);
  CHECK(t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"a"})})).status == 503);
}

TEST_CASE("a failing sample fails the batch with its error and cancels the others") {
  TestServer t;
  FakeScript s;
  s.fail_after_tokens = 2;
  t.service.set_script(s);
  const Reply failed = t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"a", "b"})}));
  CHECK(failed.status == 503);
  CHECK(error_of(failed).find("rank 1") != std::string::npos);
  s.fail_as_timeout = true;
  t.service.set_script(s);
  CHECK(t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"a"})})).status == 504);
}

TEST_CASE("a prompt the service rejects as too long gets 400 with its message") {
  TestServer t;
  FakeScript s;
  s.max_prompt_words = 2;
  t.service.set_script(s);
  const Reply r = t.post("/v2/models/GPT/infer", infer_body({bytes_input("prompts", {"short", "one two three"})}));
  CHECK(r.status == 400);
  CHECK(error_of(r).find("context") != std::string::npos);
  CHECK(t.service.num_cancelled() == 1);  // the first sample, already submitted
}

TEST_CASE("the generate extension answers with the continuation") {
  TestServer t;
  const Reply r = t.post("/v2/models/GPT/generate", R"({"text_input":"hello","parameters":{"max_tokens":3,"temperature":0.7}})");
  REQUIRE(r.status == 200);
  CHECK(r.json().at("model_name") == "GPT");
  CHECK(r.json().at("text_output") == " w0 w1 w2");
  const auto req = t.service.submitted().at(0);
  CHECK_FALSE(req.settings.greedy);
  CHECK(req.settings.temperature == doctest::Approx(0.7));
  CHECK(t.post("/v2/models/GPT/generate", R"({"parameters":{}})").status == 400);
  CHECK(t.post("/v2/models/GPT/generate", R"({"text_input":"x","max_tokens":"three"})").status == 400);
}

TEST_CASE("generate_stream sends one SSE event per token and a last one with the finish reason") {
  TestServer t;
  const Reply r = t.post("/v2/models/GPT/generate_stream", R"({"text_input":"hello","max_tokens":3})");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "text/event-stream");
  CHECK(r.header("Transfer-Encoding") == "chunked");
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 4);
  CHECK(json::parse(events[0]).at("text_output") == " w0");
  CHECK(json::parse(events[2]).at("text_output") == " w2");
  CHECK(json::parse(events[3]).at("finish_reason") == "length");
}

TEST_CASE("an error in the middle of generate_stream becomes an error event") {
  TestServer t;
  FakeScript s;
  s.fail_after_tokens = 1;
  t.service.set_script(s);
  const Reply r = t.post("/v2/models/GPT/generate_stream", R"({"text_input":"hello","max_tokens":3})");
  REQUIRE(r.status == 200);
  const auto events = sse_data(r.body);
  REQUIRE(events.size() == 2);
  CHECK(json::parse(events[1]).at("error").as_string().size() > 0);
}

TEST_CASE("a binary prompt that is not UTF-8 gets 400 naming the input and element, in a body that is JSON") {
  TestServer t;
  const Reply r = post_binary_prompts(t, {"fine", "caf\xc3\xa9", std::string("\xff\xfe", 2)});
  CHECK(r.status == 400);
  const std::string error = error_of(r);  // fails the test when the body is not JSON
  CHECK_MESSAGE(error.find("input 'prompts': element 2 is not valid UTF-8") != std::string::npos, error);
  CHECK(t.service.submitted().empty());
  CHECK(post_binary_prompts(t, {"caf\xc3\xa9"}).status == 200);
}

TEST_CASE("request bytes that are not UTF-8 quoted in an error still make a JSON body") {
  TestServer t;
  const Reply model = t.get("/v2/models/%ff%fe/ready");  // the model name, percent-decoded, is quoted in the 404
  CHECK(model.status == 404);
  CHECK(error_of(model).find("\xEF\xBF\xBD") != std::string::npos);  // U+FFFD in place of each invalid byte
  const Reply header = t.post("/v2/models/GPT/infer", "{}", {{"Inference-Header-Content-Length", "\xff"}});
  CHECK(header.status == 400);
  CHECK(error_of(header).find("Inference-Header-Content-Length") != std::string::npos);
  // JSON strings cannot carry invalid UTF-8; a lone surrogate escape is refused as invalid JSON.
  for (const char* body : {R"({"text_input":"\udc80"})", R"({"text_input":"a\ud800b"})"}) {
    const Reply r = t.post("/v2/models/GPT/generate", body);
    CHECK_MESSAGE(r.status == 400, body);
    CHECK(error_of(r).find("body") != std::string::npos);
  }
  CHECK(t.service.submitted().empty());
}

TEST_CASE("a timeout too large for the clock means no deadline rather than one already passed") {
  TestServer t;
  for (const char* timeout : {"9223372036854775807", "18446744073709551615", "1e300"}) {
    const std::string params = std::string(R"({"timeout":)") + timeout + "}";
    const Reply infer =
        t.post("/v2/models/GPT/infer",
               R"({"parameters":)" + params + R"(,"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["a"]}]})");
    CHECK_MESSAGE(infer.status == 200, timeout << " -> " << infer.body);
    const Reply generate = t.post("/v2/models/GPT/generate", R"({"text_input":"a","max_tokens":1,"parameters":)" + params + "}");
    CHECK_MESSAGE(generate.status == 200, timeout << " -> " << generate.body);
  }
  for (const TextRequest& r : t.service.submitted()) CHECK(r.deadline == Clock::time_point::max());
}
