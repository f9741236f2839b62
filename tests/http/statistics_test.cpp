// Triton's statistics extension (/v2/models/stats), the repository index, and the execution and
// duration counters they share with /metrics, fed from real requests to the fake service.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "net/metrics.h"
#include "tests/http/test_client.h"

namespace json = boost::json;
using namespace rankserve;
using namespace rankserve::testing;

namespace {

const std::string kInfer = R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[2,1],"data":["a","b"]},
                                        {"name":"max_length","datatype":"INT32","shape":[2,1],"data":[3,3]}]})";

json::object only_stat(const Reply& r) {
  REQUIRE_MESSAGE(r.status == 200, r.body);
  const json::array& stats = r.json().at("model_stats").as_array();
  REQUIRE(stats.size() == 1);
  return stats[0].as_object();
}

uint64_t count_of(const json::object& stat, const char* which) {
  return stat.at("inference_stats").at(which).at("count").to_number<uint64_t>();
}
uint64_t ns_of(const json::object& stat, const char* which) {
  return stat.at("inference_stats").at(which).at("ns").to_number<uint64_t>();
}

}  // namespace

TEST_CASE("model statistics start at zero in Triton's shape on every stats path") {
  TestServer t;
  for (const std::string path : {"/v2/models/stats", "/v2/models/GPT/stats", "/v2/models/GPT/versions/1/stats"}) {
    CAPTURE(path);
    const json::object s = only_stat(t.get(path));
    CHECK(s.at("name").as_string() == "GPT");
    CHECK(s.at("version").as_string() == "1");
    CHECK(s.at("last_inference").to_number<uint64_t>() == 0);
    CHECK(s.at("inference_count").to_number<uint64_t>() == 0);
    CHECK(s.at("execution_count").to_number<uint64_t>() == 0);
    for (const char* which : {"success", "fail", "queue", "compute_input", "compute_infer", "compute_output"}) {
      CHECK(count_of(s, which) == 0);
      CHECK(ns_of(s, which) == 0);
    }
    CHECK(s.at("batch_stats").as_array().empty());
  }
  CHECK(t.get("/v2/models/nope/stats").status == 404);
  CHECK(t.get("/v2/models/GPT/versions/2/stats").status == 404);
  CHECK(t.post("/v2/models/stats", "").status == 405);
  const Reply server = t.get("/v2");  // the reply owns the parsed body the reference points into
  const auto& ext = server.json().at("extensions").as_array();
  CHECK(std::find(ext.begin(), ext.end(), json::value("statistics")) != ext.end());
}

TEST_CASE("statistics count successful requests with their queue and compute durations, and failed ones") {
  TestServer t;
  REQUIRE(t.post("/v2/models/GPT/infer", kInfer).status == 200);
  REQUIRE(t.post("/v2/models/GPT/generate", R"({"text_input":"c","max_tokens":2})").status == 200);
  const json::object after_success = only_stat(t.get("/v2/models/GPT/stats"));
  CHECK(count_of(after_success, "success") == 2);
  CHECK(after_success.at("inference_count").to_number<uint64_t>() == 3);  // a batch of 2, then 1
  for (const char* which : {"queue", "compute_input", "compute_infer", "compute_output"}) {
    CAPTURE(which);
    CHECK(count_of(after_success, which) == 2);
  }
  // The fake engine steps once a millisecond: three tokens take at least two steps.
  CHECK(ns_of(after_success, "compute_infer") > 0);
  CHECK(ns_of(after_success, "success") >= ns_of(after_success, "compute_infer") + ns_of(after_success, "queue"));
  CHECK(after_success.at("execution_count").to_number<uint64_t>() >= 3);
  CHECK(after_success.at("last_inference").to_number<uint64_t>() > 1'700'000'000'000ull);  // ms since the epoch
  CHECK(count_of(after_success, "fail") == 0);

  REQUIRE(t.post("/v2/models/GPT/infer", R"({"inputs":[]})").status == 400);
  t.service.set_script(FakeScript{.overloaded = true});
  REQUIRE(t.post("/v2/models/GPT/infer", kInfer).status == 429);
  // A failure is recorded right after its answer is written: poll until both show.
  json::object s;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  do {
    s = only_stat(t.get("/v2/models/stats"));
  } while (count_of(s, "fail") < 2 && std::chrono::steady_clock::now() < deadline);
  CHECK(count_of(s, "fail") == 2);
  CHECK(count_of(s, "success") == 2);
}

TEST_CASE("metrics carry the execution count and the queue and compute split") {
  TestServer t;
  REQUIRE(t.post("/v2/models/GPT/infer", kInfer).status == 200);
  const std::string m = send_request(t.server.metrics_port(), "GET", "/metrics").body;
  for (const char* name : {"nv_inference_exec_count", "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
                           "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us"}) {
    CAPTURE(name);
    CHECK(m.find(std::string("# TYPE ") + name + " counter\n") != std::string::npos);
    CHECK(m.find(std::string(name) + "{model=\"GPT\",version=\"1\"} ") != std::string::npos);
  }
  CHECK(m.find("nv_inference_exec_count{model=\"GPT\",version=\"1\"} 0\n") == std::string::npos);
  CHECK(m.find("nv_inference_compute_infer_duration_us{model=\"GPT\",version=\"1\"} 0\n") == std::string::npos);
  CHECK(m.find("nv_inference_request_success{model=\"GPT\",version=\"1\"} 1\n") != std::string::npos);
  CHECK(m.find("nv_inference_count{model=\"GPT\",version=\"1\"} 2\n") != std::string::npos);
}

TEST_CASE("the repository index lists the served model with its state") {
  TestServer t;
  for (const std::string body : {"", "{}", R"({"ready":true})", R"({"ready":false})"}) {
    CAPTURE(body);
    const Reply r = t.post("/v2/repository/index", body);
    REQUIRE(r.status == 200);
    const json::array& index = r.json().as_array();
    REQUIRE(index.size() == 1);
    CHECK(index[0].at("name").as_string() == "GPT");
    CHECK(index[0].at("version").as_string() == "1");
    CHECK(index[0].at("state").as_string() == "READY");
    CHECK(index[0].at("reason").as_string() == "");
  }
  t.service.set_script(FakeScript{.ready = false});
  const Reply loading = t.post("/v2/repository/index", "");
  CHECK(loading.json().at(0).at("state").as_string() == "LOADING");
  CHECK(loading.json().at(0).at("reason").as_string() == "loading");
  CHECK(t.post("/v2/repository/index", R"({"ready":true})").json().as_array().empty());
  CHECK(t.post("/v2/repository/index", R"({"ready":"yes"})").status == 400);
  CHECK(t.get("/v2/repository/index").status == 405);
}

TEST_CASE("another surface records into the server's statistics through HttpServer::metrics") {
  TestServer t;
  net::RequestTiming timing;
  timing.received = Clock::now();
  timing.submitted = timing.received + std::chrono::microseconds(1);
  timing.first_event = timing.submitted + std::chrono::microseconds(2);
  timing.finished = timing.first_event + std::chrono::microseconds(3);
  timing.encoded = timing.finished + std::chrono::microseconds(4);
  t.server.metrics().count_inference_success("GPT", timing, 5);
  const json::object s = only_stat(t.get("/v2/models/GPT/stats"));
  CHECK(s.at("inference_count").to_number<uint64_t>() == 5);
  CHECK(ns_of(s, "compute_input") == 1000);
  CHECK(ns_of(s, "queue") == 2000);
  CHECK(ns_of(s, "compute_infer") == 3000);
  CHECK(ns_of(s, "compute_output") == 4000);
  CHECK(ns_of(s, "success") == 10000);
  const std::string m = send_request(t.server.metrics_port(), "GET", "/metrics").body;
  CHECK(m.find("nv_inference_queue_duration_us{model=\"GPT\",version=\"1\"} 2\n") != std::string::npos);
  CHECK(m.find("nv_inference_request_duration_us{model=\"GPT\",version=\"1\"} 10\n") != std::string::npos);
}
