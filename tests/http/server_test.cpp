#include "net/http_server.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>

#include <future>

#include "core/error.h"
#include "tests/http/test_client.h"

namespace json = boost::json;
using namespace rankserve;
using namespace rankserve::testing;

TEST_CASE("binds free ports when asked for port 0 and answers on both") {
  TestServer t;
  CHECK(t.server.http_port() > 0);
  CHECK(t.server.metrics_port() > 0);
  CHECK(t.server.http_port() != t.server.metrics_port());
  CHECK(t.get("/v2/health/live").status == 200);
  CHECK(send_request(t.server.metrics_port(), "GET", "/v2/health/live").status == 200);
}

TEST_CASE("a port in use fails construction with a usage error naming every port and its flag") {
  boost::asio::io_context io;
  using tcp = boost::asio::ip::tcp;
  tcp::acceptor a(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  tcp::acceptor b(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  net::ServerOptions o = TestServer::default_options();
  o.http_port = a.local_endpoint().port();
  o.metrics_port = b.local_endpoint().port();
  FakeService service;
  try {
    net::HttpServer server(o, service);
    FAIL("expected Error(usage)");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::usage);
    const std::string what = e.what();
    CHECK(what.find(std::to_string(o.http_port) + " (--http-port)") != std::string::npos);
    CHECK(what.find(std::to_string(o.metrics_port) + " (--metrics-port)") != std::string::npos);
  }
}

TEST_CASE("metrics port -1 opens no metrics listener and /metrics stays on the http port") {
  net::ServerOptions o = TestServer::default_options();
  o.metrics_port = -1;
  TestServer t(gpt_model_info(), o);
  CHECK(t.server.metrics_port() == -1);
  CHECK(t.get("/metrics").status == 200);
}

TEST_CASE("an unknown path gets 404 and a wrong method gets 405 with Allow") {
  TestServer t;
  const Reply missing = t.get("/nope");
  CHECK(missing.status == 404);
  CHECK(missing.json().at("error").as_string().size() > 0);
  const Reply wrong = t.post("/v2/health/ready", "{}");
  CHECK(wrong.status == 405);
  CHECK(wrong.header("Allow") == "GET");
  const Reply openai_wrong = t.get("/v1/completions");
  CHECK(openai_wrong.status == 405);
  CHECK(openai_wrong.json().at("error").at("type").as_string() == "invalid_request_error");
}

TEST_CASE("the metrics port serves only /metrics and health") {
  TestServer t;
  CHECK(send_request(t.server.metrics_port(), "GET", "/metrics").status == 200);
  CHECK(send_request(t.server.metrics_port(), "GET", "/v2/health/ready").status == 200);
  CHECK(send_request(t.server.metrics_port(), "GET", "/v2/models/GPT").status == 404);
  CHECK(send_request(t.server.metrics_port(), "POST", "/v1/completions", R"({"prompt":"x"})").status == 404);
}

TEST_CASE("readiness follows the service and says why it is not ready") {
  TestServer t;
  CHECK(t.get("/v2/health/ready").status == 200);
  FakeScript s;
  s.ready = false;
  s.not_ready_reason = "rank 3 (host n2) silent for 6.1 s";
  t.service.set_script(s);
  const Reply r = t.get("/v2/health/ready");
  CHECK(r.status == 503);
  CHECK(std::string(r.json().at("error").as_string()).find("rank 3 (host n2)") != std::string::npos);
  CHECK(t.get("/v2/health/live").status == 200);
  CHECK(t.get("/v2/models/GPT/ready").status == 503);
}

TEST_CASE("a body over the limit gets 413 before it is read") {
  net::ServerOptions o = TestServer::default_options();
  o.max_body_bytes = 1024;
  TestServer t(gpt_model_info(), o);
  const Reply r = t.post("/v1/completions", std::string(4096, ' '));
  CHECK(r.status == 413);
  CHECK(r.json().at("error").is_object());
  CHECK(t.post("/v1/completions", R"({"prompt":"fits","max_tokens":1})").status == 200);
}

TEST_CASE("a chunked body over the limit gets 413") {
  net::ServerOptions o = TestServer::default_options();
  o.max_body_bytes = 1024;
  TestServer t(gpt_model_info(), o);
  RawConnection c(t.server.http_port());
  std::string chunk(800, 'x');
  c.write("POST /v2/models/GPT/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  c.write("320\r\n" + chunk + "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n");
  const auto [text, closed] = c.read_until_close(5s);
  CHECK(text.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(closed);
}

TEST_CASE("a connection that does not finish its header within the header timeout is closed") {
  net::ServerOptions o = TestServer::default_options();
  o.header_timeout_s = 0.3;
  TestServer t(gpt_model_info(), o);
  RawConnection c(t.server.http_port());
  c.write("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n");  // never ends the header
  const auto [text, closed] = c.read_until_close(10s);
  CHECK(closed);
  CHECK(text.empty());
}

TEST_CASE("an idle keep-alive connection is closed after the idle timeout and serves requests until then") {
  net::ServerOptions o = TestServer::default_options();
  o.idle_timeout_s = 0.3;
  TestServer t(gpt_model_info(), o);
  RawConnection c(t.server.http_port());
  c.write("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(c.read_until("\r\n\r\n", 5s).rfind("HTTP/1.1 200", 0) == 0);
  const auto [rest, closed] = c.read_until_close(10s);
  CHECK(closed);
}

TEST_CASE("a malformed request line gets 400 and the connection closes") {
  TestServer t;
  RawConnection c(t.server.http_port());
  c.write("THIS IS NOT HTTP\r\n\r\n");
  const auto [text, closed] = c.read_until_close(5s);
  CHECK(text.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(closed);
}

TEST_CASE("pipelined keep-alive requests on one connection are answered in order") {
  TestServer t;
  RawConnection c(t.server.http_port());
  c.write("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /v2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const auto [text, closed] = c.read_until_close(5s);
  CHECK(closed);
  const size_t first = text.find("HTTP/1.1 200");
  const size_t second = text.find("HTTP/1.1 200", first + 1);
  CHECK(first == 0);
  CHECK(second != std::string::npos);
  CHECK(text.find("rankserve") != std::string::npos);
}

TEST_CASE("with an API key inference endpoints need the bearer token and health and metadata stay open") {
  net::ServerOptions o = TestServer::default_options();
  o.api_key = "s3cret";
  TestServer t(gpt_model_info(), o);
  const Reply no_key = t.post("/v1/completions", R"({"prompt":"a","max_tokens":1})");
  CHECK(no_key.status == 401);
  CHECK(no_key.json().at("error").at("code").as_string() == "invalid_api_key");
  CHECK(t.post("/v1/completions", R"({"prompt":"a","max_tokens":1})", {{"Authorization", "Bearer wrong"}}).status == 401);
  CHECK(t.post("/v2/models/GPT/infer", "{}").status == 401);
  CHECK(t.post("/v1/completions", R"({"prompt":"a","max_tokens":1})", {{"Authorization", "Bearer s3cret"}}).status == 200);
  CHECK(t.get("/v2/health/ready").status == 200);
  CHECK(t.get("/v2/models/GPT").status == 200);
  CHECK(t.get("/metrics").status == 200);
}

TEST_CASE("metrics use the Prometheus text format with the Triton and rankserve names") {
  TestServer t;
  REQUIRE(t.post("/v2/models/GPT/infer", R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[2,1],"data":["a","b"]}]})")
              .status == 200);
  REQUIRE(t.post("/v2/models/GPT/infer", R"({"inputs":[]})").status == 400);
  REQUIRE(t.post("/v1/completions", R"({"prompt":"a","max_tokens":3})").status == 200);
  // A request is counted right after its answer is written: poll until the last one shows.
  Reply r;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  do {
    r = send_request(t.server.metrics_port(), "GET", "/metrics");
  } while (r.body.find("rankserve_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1\n") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline);
  CHECK(r.status == 200);
  CHECK(r.header("Content-Type").find("text/plain; version=0.0.4") == 0);
  const std::string& m = r.body;
  CHECK(m.find("nv_inference_request_success{model=\"GPT\",version=\"1\"} 1\n") != std::string::npos);
  CHECK(m.find("nv_inference_request_failure{model=\"GPT\",version=\"1\",reason=\"OTHER\"} 1\n") != std::string::npos);
  CHECK(m.find("nv_inference_count{model=\"GPT\",version=\"1\"} 2\n") != std::string::npos);
  CHECK(m.find("rankserve_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1\n") != std::string::npos);
  CHECK(m.find("rankserve_http_requests_total{endpoint=\"/v2/models/{model}/infer\",status=\"400\"} 1\n") != std::string::npos);
  CHECK(m.find("rankserve_ready 1\n") != std::string::npos);
  CHECK(m.find("rankserve_kv_cache_usage_ratio 0.25\n") != std::string::npos);
  CHECK(m.find("rankserve_rank_heartbeat_age_seconds{rank=\"1\"} 1.5\n") != std::string::npos);
  CHECK(m.find("rankserve_time_to_first_token_seconds_count 3\n") != std::string::npos);
  CHECK(m.find("rankserve_inter_token_latency_seconds_bucket{le=\"+Inf\"}") != std::string::npos);
  CHECK(m.find("rankserve_request_duration_seconds_count 3\n") != std::string::npos);
  for (const char* name : {"rankserve_queue_size", "rankserve_running_sequences", "rankserve_prompt_tokens_total",
                           "rankserve_generation_tokens_total"}) {
    CHECK_MESSAGE(m.find(std::string("# TYPE ") + name + " ") != std::string::npos, name);
  }
}

TEST_CASE("stop cancels requests in flight and returns with connections still open") {
  auto t = std::make_unique<TestServer>();
  FakeScript s;
  s.hang = true;
  t->service.set_script(s);
  RawConnection c(t->server.http_port());
  const std::string body = R"({"prompt":"a","max_tokens":5})";
  c.write("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body);
  REQUIRE(t->service.wait_for_submits(1, 5s));
  t->server.stop();
  CHECK(t->service.num_cancelled() == 1);
  const auto [text, closed] = c.read_until_close(5s);
  CHECK(closed);
}

TEST_CASE("a client that expects 100-continue gets it before sending the body, and 413 instead when the body is too large") {
  net::ServerOptions o = TestServer::default_options();
  o.max_body_bytes = 1024;
  TestServer t(gpt_model_info(), o);
  const std::string body = R"({"prompt":"a","max_tokens":1})";
  RawConnection c(t.server.http_port());
  c.write(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  CHECK(c.read_until("\r\n\r\n", 5s).rfind("HTTP/1.1 100 Continue\r\n\r\n", 0) == 0);
  c.write(body);
  CHECK(c.read_until("text_completion", 5s).rfind("HTTP/1.1 200", 0) == 0);

  RawConnection big(t.server.http_port());
  big.write("POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
  const auto [text, closed] = big.read_until_close(5s);
  CHECK(text.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(text.find("\"param\":null") != std::string::npos);  // OpenAI-shaped, as the path is /v1/
  CHECK(closed);
}

TEST_CASE(
    "a Transfer-Encoding other than exactly chunked gets 501, and one beside Content-Length or not ending in chunked gets 400") {
  TestServer t;
  struct Case {
    std::string headers;
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"Transfer-Encoding: gzip\r\n", "", 501},
      {"Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n", 501},
      {"Transfer-Encoding: chunked;ext=1\r\n", "0\r\n\r\n", 501},
      {"Transfer-Encoding: chunked, gzip\r\n", "", 400},
      {"Transfer-Encoding: ,\r\n", "", 400},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", 400},
      {"Transfer-Encoding: gzip\r\nContent-Length: 0\r\n", "", 400},  // a smuggling attempt: was served by Content-Length
      {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", 400},
      {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n", 400},
  };
  for (const Case& c : cases) {
    const RawReply r =
        send_raw(t.server.http_port(), "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" + c.headers + "\r\n" + c.body);
    CHECK_MESSAGE(r.status() == c.status, c.headers << " -> " << r.text);
    CHECK_MESSAGE(r.closed, c.headers);
    boost::json::error_code ec;
    const json::value body = json::parse(r.body(), ec);
    CHECK_MESSAGE((!ec && body.at("error").is_string()), c.headers << " -> " << r.text);
  }
  // Exactly chunked, in any case, is framed as chunked.
  const std::string body = R"({"prompt":"a","max_tokens":1})";
  const RawReply ok = send_raw(t.server.http_port(),
                               "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               "Content-Type: application/json\r\nTransfer-Encoding: Chunked\r\n\r\n" +
                                   fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", body.size(), body));
  CHECK_MESSAGE(ok.status() == 200, ok.text);
}

TEST_CASE("a malformed or truncated body gets 400 with a JSON error and the connection closes") {
  TestServer t;
  struct Case {
    std::string framing;  // the headers that frame the body
    std::string body;
    bool end_stream;  // the client half-closes after the bytes
  };
  const std::vector<Case> cases = {
      {"Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n", false},  // chunk size not hex
      {"Transfer-Encoding: chunked\r\n", "3\r\nabcXY0\r\n\r\n", false},     // no CRLF after the chunk data
      {"Transfer-Encoding: chunked\r\n", "a\r\nabc", true},                 // cut short inside a chunk
      {"Content-Length: 10\r\n", "abc", true},                              // cut short of its length
  };
  for (const Case& c : cases) {
    const RawReply r = send_raw(t.server.http_port(),
                                "POST /v2/models/GPT/infer HTTP/1.1\r\nHost: x\r\n" + c.framing + "\r\n" + c.body, c.end_stream);
    CHECK_MESSAGE(r.status() == 400, c.body << " -> " << r.text);
    CHECK_MESSAGE(r.closed, c.body);
    boost::json::error_code ec;
    const json::value body = json::parse(r.body(), ec);
    CHECK_MESSAGE((!ec && body.at("error").is_string()), c.body << " -> " << r.text);
  }
  CHECK(t.service.submitted().empty());
}

TEST_CASE("health answers while a request is inside the service's submit, which runs off the I/O threads") {
  net::ServerOptions o = TestServer::default_options();
  o.num_threads = 1;  // one I/O thread: a submit (a multi-megabyte prompt's tokenization) run on it would stall every connection
  TestServer t(gpt_model_info(), o);
  FakeScript blocked;
  blocked.block_submits = true;
  t.service.set_script(blocked);
  std::future<Reply> request;
  // Declared after the future, so it is released first however the test ends: stop() waits for submits.
  struct Release {
    FakeService& service;
    ~Release() { service.set_script(FakeScript{}); }
  } release{t.service};
  request = std::async(std::launch::async, [&] { return t.post("/v1/completions", R"({"prompt":"a","max_tokens":2})"); });
  REQUIRE(t.service.wait_for_blocked_submits(1, 10s));
  // Generous deadlines only to end a hang: with the submit on the I/O thread these never answer.
  CHECK(send_request(t.server.http_port(), "GET", "/v2/health/ready", "", {}, 10s).status == 200);
  CHECK(send_request(t.server.http_port(), "GET", "/v2/health/live", "", {}, 10s).status == 200);
  t.service.set_script(FakeScript{});
  const Reply r = request.get();
  CHECK(r.status == 200);
  CHECK(r.json().at("choices").as_array()[0].at("text").as_string() == FakeService::continuation(2));
}
