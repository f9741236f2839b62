// Numeric limits of request fields on every surface: sampling values checked as the float32 the
// sampler uses, and tensor shapes whose element counts would overflow the codec's size arithmetic.
#include "net/tensor.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <boost/json.hpp>

#include <cstring>

#include "core/error.h"
#include "core/setting_error.h"
#include "tests/http/test_client.h"

namespace json = boost::json;
using namespace rankserve;
using namespace rankserve::testing;
using rankserve::net::decode_infer_request;

namespace {

// Values a double holds but float32 does not: infinite, 0 or subnormal once converted.
const std::vector<std::string> kNotFloat32 = {"1e39", "1e308", "1e-40", "5e-324"};

// The 400's text and the field it names, for either error shape (KServe's string, OpenAI's object).
std::string error_text(const Reply& r) {
  const json::value& e = r.json().at("error");
  return e.is_string() ? std::string(e.as_string()) : json::serialize(e);
}

void check_refused(TestServer& t, const std::string& target, const std::string& body, const std::string& field) {
  const Reply r = t.post(target, body);
  CHECK_MESSAGE(r.status == 400, target << " " << body << " -> " << r.status << " " << r.body);
  CHECK_MESSAGE(error_text(r).find(field) != std::string::npos, body << " -> " << r.body);
}

}  // namespace

TEST_CASE("sampling values that are not float32 get 400 naming the field on every surface") {
  TestServer t;
  for (const std::string& v : kNotFloat32) {
    for (const std::string field : {"temperature", "top_p", "repetition_penalty"}) {
      // OpenAI (temperature and top_p are range-checked first: only the small values reach float32).
      if (field == "repetition_penalty" || v.find("e-") != std::string::npos) {
        check_refused(t, "/v1/completions", fmt::format(R"({{"prompt":"x","{}":{}}})", field, v), field);
        check_refused(t, "/v1/chat/completions",
                      fmt::format(R"({{"messages":[{{"role":"user","content":"x"}}],"{}":{}}})", field, v), field);
      }
      // KServe generate (top level and parameters).
      if (field != "top_p" || v.find("e-") != std::string::npos) {
        check_refused(t, "/v2/models/GPT/generate", fmt::format(R"({{"text_input":"x","use_greedy":false,"{}":{}}})", field, v),
                      field);
        check_refused(t, "/v2/models/GPT/generate_stream",
                      fmt::format(R"({{"text_input":"x","parameters":{{"use_greedy":false,"{}":{}}}}})", field, v), field);
      }
    }
    // KServe infer: the NeMo contract's FP32 inputs and the request parameters of every contract.
    for (const std::string input : {"temperature", "top_p", "repetition_penalty"}) {
      if (input == "top_p" && v.find("e-") == std::string::npos) continue;  // > 1: the range check names it
      check_refused(t, "/v2/models/GPT/infer",
                    fmt::format(R"({{"inputs":[{{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["x"]}},
                                               {{"name":"use_greedy","datatype":"BOOL","shape":[1,1],"data":[false]}},
                                               {{"name":"{}","datatype":"FP32","shape":[1,1],"data":[{}]}}]}})",
                                input, v),
                    fmt::format("'{}'", input));
    }
  }
  CHECK(t.service.submitted().empty());
  TestServer opt(opt_model_info());
  for (const std::string& v : kNotFloat32) {
    for (const std::string field : {"temperature", "top_p"}) {
      if (field == "top_p" && v.find("e-") == std::string::npos) continue;
      check_refused(
          opt, "/v2/models/OPT/infer",
          fmt::format(
              R"({{"inputs":[{{"name":"input","datatype":"BYTES","shape":[1,1],"data":["x"]}}],"parameters":{{"{}":{}}}}})",
              field, v),
          "parameters." + field);
    }
  }
  CHECK(opt.service.submitted().empty());
}

TEST_CASE("a binary FP32 NaN sampling input gets 400 naming it") {
  TestServer t;
  for (const std::string input : {"temperature", "top_p", "repetition_penalty"}) {
    float nan = std::numeric_limits<float>::quiet_NaN();
    std::string raw(4, '\0');
    std::memcpy(raw.data(), &nan, 4);
    const std::string header = fmt::format(R"({{"inputs":[{{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["x"]}},
        {{"name":"use_greedy","datatype":"BOOL","shape":[1,1],"data":[false]}},
        {{"name":"{}","datatype":"FP32","shape":[1,1],"parameters":{{"binary_data_size":4}}}}]}})",
                                           input);
    const Reply r =
        t.post("/v2/models/GPT/infer", header + raw, {{"Inference-Header-Content-Length", std::to_string(header.size())}});
    CHECK_MESSAGE(r.status == 400, input << " -> " << r.body);
    CHECK(error_text(r).find(fmt::format("'{}'", input)) != std::string::npos);
  }
  CHECK(t.service.submitted().empty());
}

TEST_CASE("the smallest and largest normal float32 sampling values are accepted as sent") {
  TestServer t;
  const Reply r = t.post("/v1/completions", R"({"prompt":"x","temperature":1.2e-38,"top_p":1.2e-38,"repetition_penalty":3e38})");
  REQUIRE_MESSAGE(r.status == 200, r.body);
  const auto s = t.service.submitted().at(0).settings;
  CHECK(s.temperature == doctest::Approx(1.2e-38f));
  CHECK(s.repetition_penalty == doctest::Approx(3e38f));
}

TEST_CASE("a binary tensor whose byte count overflows is refused before it is read") {
  // 2^62 + 1 INT32 elements are 2^64 + 4 bytes: 4 once wrapped, which the 4 bytes sent would match.
  const std::string header =
      R"({"inputs":[{"name":"max_length","datatype":"INT32","shape":[4611686018427387905],"parameters":{"binary_data_size":4}}]})";
  try {
    decode_infer_request(header + std::string(4, '\1'), header.size());
    FAIL("an overflowing shape was accepted");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("'max_length'") != std::string::npos);
  }
  TestServer t;
  const Reply r = t.post("/v2/models/GPT/infer", header + std::string(4, '\1'),
                         {{"Inference-Header-Content-Length", std::to_string(header.size())}});
  CHECK(r.status == 400);
  CHECK(t.get("/v2/health/ready").status == 200);
}

TEST_CASE("a JSON shape whose element count overflows is refused") {
  // 2^32 x 2^32 elements wrap to 0, which the empty data would match.
  for (const std::string shape : {"[4294967296,4294967296]", "[3037000500,3037000500,2]", "[1000000]"}) {
    const std::string body = fmt::format(R"({{"inputs":[{{"name":"prompts","datatype":"BYTES","shape":{},"data":[]}}]}})", shape);
    CHECK_THROWS_WITH_AS(decode_infer_request(body, std::nullopt), doctest::Contains("more elements than a body"), Error);
  }
  // A zero dimension holds nothing, whatever the others say.
  CHECK(decode_infer_request(R"({"inputs":[{"name":"a","datatype":"INT32","shape":[0,4611686018427387905],"data":[]}]})",
                             std::nullopt)
            .inputs.at(0)
            .num_elements() == 0);
}

TEST_CASE("a request of more samples than the queue holds gets 400 naming the limit, not 429") {
  TestServer t;  // the fake service queues at most 16
  const int limit = t.service.status().max_queue_size;
  REQUIRE(limit == 16);
  std::string prompts = "[";
  for (int i = 0; i <= limit; ++i) prompts += fmt::format(R"({}"p{}")", i ? "," : "", i);
  prompts += "]";
  const Reply openai = t.post("/v1/completions", fmt::format(R"({{"prompt":{},"max_tokens":1}})", prompts));
  CHECK(openai.status == 400);
  CHECK(error_text(openai).find("--max-queue-size 16") != std::string::npos);
  const Reply kserve = t.post(
      "/v2/models/GPT/infer",
      fmt::format(R"({{"inputs":[{{"name":"prompts","datatype":"BYTES","shape":[{},1],"data":{}}}]}})", limit + 1, prompts));
  CHECK(kserve.status == 400);
  CHECK(error_text(kserve).find("--max-queue-size 16") != std::string::npos);
  CHECK(t.service.submitted().empty());
  // As many samples as the queue holds are admitted.
  CHECK(t.post("/v1/completions", R"({"prompt":"x","n":4,"max_tokens":1})").status == 200);
}

TEST_CASE("a service error about a setting reaches clients worded by the server's error_message") {
  FakeScript full;
  full.overloaded = true;
  const std::string kserve_body = R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["x"]}]})";
  {
    TestServer t;  // no wording given: the service's own words
    t.service.set_script(full);
    CHECK(error_text(t.post("/v2/models/GPT/infer", kserve_body)).find("the maximum queue size 16") != std::string::npos);
  }
  net::ServerOptions options = TestServer::default_options();
  // As the rankserve command words them (launcher::user_message): the setting named by its flag.
  options.error_message = [](const Error& e) {
    const auto* about = dynamic_cast<const SettingError*>(&e);
    return about != nullptr && about->setting() == Setting::max_queue_size ? message_naming(*about, "--max-queue-size")
                                                                           : std::string(e.what());
  };
  TestServer t(gpt_model_info(), options);
  t.service.set_script(full);
  const Reply kserve = t.post("/v2/models/GPT/infer", kserve_body);
  CHECK(kserve.status == 429);
  CHECK_MESSAGE(error_text(kserve).find("(16 requests wait; --max-queue-size 16)") != std::string::npos, kserve.body);
  const Reply openai = t.post("/v1/completions", R"({"prompt":"x","max_tokens":1})");
  CHECK(openai.status == 429);
  CHECK_MESSAGE(error_text(openai).find("--max-queue-size 16") != std::string::npos, openai.body);
  // Messages of the front end itself are not reworded (they name no setting).
  CHECK(error_text(t.post("/v2/models/GPT/generate", R"({"parameters":{}})")).find("text_input") != std::string::npos);
}
