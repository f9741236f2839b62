// clients tier: a black-box corpus of bad requests against a live 2-rank server, grown from every
// defect found by probing it from outside. Each request must get a 4xx naming the field, and the
// server must stay ready with every rank alive. Also: a model whose logits are NaN fails each
// request with an error and keeps serving (the sampler never takes a rank down).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "tests/clients/live_server.h"

using namespace rankserve::testing;
using namespace std::chrono_literals;

namespace {

// A queue of 4: a batch of 5 samples can never be admitted whole.
Server& hardened_server() {
  static Server server("gpt2", "--gpus 2 --tp 2", "--max-queue-size 4");
  return server;
}

struct Bad {
  std::string path;
  std::string body;
  std::string mentions;  // the field the 4xx must name
  std::string headers;   // extra curl arguments
  int status = 400;
};

// A KServe binary request: `header` is the JSON part, `binary` what follows it.
Bad binary_request(const std::string& header, const std::string& binary, const std::string& mentions) {
  return {"/v2/models/GPT/infer", header + binary, mentions,
          fmt::format("-H 'Inference-Header-Content-Length: {}'", header.size())};
}

std::string nemo_inputs(const std::string& extra) {
  return R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["1 2 3"]},)"
         R"({"name":"use_greedy","datatype":"BOOL","shape":[1,1],"data":[false]},)" +
         extra + "]}";
}

std::vector<Bad> corpus() {
  std::vector<Bad> c = {
      // Sampling values that are 0 or infinite as float32 (the sampler aborted every rank).
      {"/v1/completions", R"({"prompt":"x","temperature":1e-40})", "temperature"},
      {"/v1/completions", R"({"prompt":"x","top_p":5e-324})", "top_p"},
      {"/v1/completions", R"({"prompt":"x","repetition_penalty":1e39})", "repetition_penalty"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"repetition_penalty":1e308})",
       "repetition_penalty"},
      {"/v2/models/GPT/generate", R"({"text_input":"x","use_greedy":false,"temperature":1e-40})", "temperature"},
      {"/v2/models/GPT/generate", R"({"text_input":"x","repetition_penalty":5e-324})", "repetition_penalty"},
      {"/v2/models/GPT/generate_stream", R"({"text_input":"x","parameters":{"use_greedy":false,"top_p":1e-40}})", "top_p"},
      {"/v2/models/GPT/infer", nemo_inputs(R"({"name":"temperature","datatype":"FP32","shape":[1,1],"data":[1e39]})"),
       "'temperature'"},
      {"/v2/models/GPT/infer", nemo_inputs(R"({"name":"repetition_penalty","datatype":"FP32","shape":[1,1],"data":[1e-40]})"),
       "'repetition_penalty'"},
      // Shapes whose element counts overflow (binary: a read past the buffer; JSON: accepted).
      binary_request(
          R"({"inputs":[{"name":"max_length","datatype":"INT32","shape":[4611686018427387905],"parameters":{"binary_data_size":4}}]})",
          "abcd", "'max_length'"),
      {"/v2/models/GPT/infer", R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[4294967296,4294967296],"data":[]}]})",
       "'prompts'"},
      // More samples than --max-queue-size 4 (429 forever before).
      {"/v1/completions", R"({"prompt":["a","b","c","d","e"],"max_tokens":1})", "--max-queue-size 4"},
      {"/v1/completions", R"({"prompt":"a","n":5,"max_tokens":1})", "--max-queue-size 4"},
      {"/v2/models/GPT/infer", R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[5,1],"data":["a","b","c","d","e"]}]})",
       "--max-queue-size 4"},
      // Raw bytes that are not UTF-8 in a binary prompt (echoed into a response that was then not JSON).
      binary_request(R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"parameters":{"binary_data_size":6}}]})",
                     std::string("\x02\0\0\0\xff\xfe", 6), "UTF-8"),
      // Chat messages with no text (accepted before).
      {"/v1/chat/completions", R"({"messages":[{"role":"user"}]})", "messages[0].content"},
      {"/v1/chat/completions", R"({"messages":[{"role":"user","content":[]}]})", "messages[0].content"},
  };
  return c;
}

// Requests whose framing curl would not send: written to the socket as they are.
struct RawBad {
  std::string request;
  int status;
};

std::vector<RawBad> raw_corpus() {
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";
  const std::string body = R"({"prompt":"x","max_tokens":1})";
  return {
      // Transfer-Encoding beside Content-Length (a request-smuggling risk behind a proxy; Content-Length won before).
      {head + "Transfer-Encoding: chunked\r\n" + fmt::format("Content-Length: {}\r\n\r\n", body.size()) + body, 400},
      // A coding rankserve does not implement (ignored before).
      {head + fmt::format("Transfer-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", body.size()) + body, 400},
      {head + "Transfer-Encoding: gzip\r\n\r\n" + body, 501},
      {head + "Transfer-Encoding: gzip, chunked\r\n\r\n" + fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", body.size(), body), 501},
      // A malformed chunked body (dropped without an answer before).
      {head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body + "\r\n0\r\n\r\n", 400},
  };
}

// The status line's code of the server's answer to `request` sent raw over TCP (bash's /dev/tcp).
int send_raw(const std::string& url, const std::string& request) {
  const std::string host_port = url.substr(url.find("://") + 3);
  const std::string host = host_port.substr(0, host_port.find(':')), port = host_port.substr(host_port.find(':') + 1);
  const auto r =
      run(fmt::format("exec 3<>/dev/tcp/{}/{} && cat {} >&3 && timeout 20 head -c 12 <&3", host, port, text_file("raw", request)),
          30s);
  REQUIRE_MESSAGE(r.output.rfind("HTTP/1.1 ", 0) == 0, r.output);
  return std::stoi(r.output.substr(9, 3));
}

}  // namespace

TEST_CASE("a corpus of bad requests each gets a 4xx naming the field, and the server stays ready with every rank alive") {
  Server& s = hardened_server();
  const int workers = s.num_workers_alive();
  REQUIRE(workers == 2);
  for (const Bad& bad : corpus()) {
    INFO(bad.path << " " << bad.body.substr(0, 300));
    const Reply reply = post_json(s.url + bad.path, bad.body, bad.headers);
    INFO(reply.body);
    CHECK(reply.status == bad.status);
    CHECK(reply.body.find(bad.mentions) != std::string::npos);
    REQUIRE(curl(s.url + "/v2/health/ready").status == 200);
  }
  for (const RawBad& bad : raw_corpus()) {
    INFO(bad.request);
    CHECK(send_raw(s.url, bad.request) == bad.status);
    REQUIRE(curl(s.url + "/v2/health/ready").status == 200);
  }
  CHECK(s.num_workers_alive() == workers);
  // A KServe timeout too large for the clock means no deadline (it expired at once before).
  const Reply no_deadline =
      post_json(s.url + "/v2/models/GPT/generate", R"({"text_input":"1 2 3","max_tokens":2,"timeout":9223372036854775807})");
  CHECK_MESSAGE(no_deadline.status == 200, no_deadline.body);
  const Reply after = post_json(s.url + "/v1/completions", R"({"prompt":"1 2 3","max_tokens":2,"temperature":0.5,"seed":1})");
  CHECK(after.status == 200);
  const Reply queue_full = post_json(s.url + "/v1/completions", R"({"prompt":"a","n":4,"max_tokens":1})");
  CHECK(queue_full.status == 200);  // as many samples as the queue holds are admitted
}

TEST_CASE("a model whose logits are NaN fails each request with an error and keeps serving on every rank") {
  // The final layer norm's weights set to NaN: every logit is NaN.
  const std::string poison = fmt::format(
      "/usr/bin/python3 -c \"import sys; sys.path.insert(0, '{}/tests/reference'); import tiny_models as t; "
      "w = t.load_safetensors('model.safetensors'); k = [n for n in w if n.endswith('ln_f.weight')][0]; "
      "w[k][:] = float('nan'); t.save_safetensors('model.safetensors', w)\"",
      kSource);
  Server s("gpt2", "--gpus 2 --tp 2", "", poison);
  for (const std::string body :
       {R"({"prompt":"1 2 3","max_tokens":3,"temperature":0})", R"({"prompt":"1 2 3","max_tokens":3,"temperature":0.7})",
        R"({"prompt":"1 2 3","max_tokens":3,"repetition_penalty":1.5,"temperature":0})"}) {
    const Reply r = post_json(s.url + "/v1/completions", body);
    INFO(body << " -> " << r.body);
    CHECK(r.status == 500);
    CHECK(r.body.find("sampling") != std::string::npos);
    CHECK(curl(s.url + "/v2/health/ready").status == 200);
  }
  const Reply stream = post_json(s.url + "/v2/models/GPT/generate_stream", R"({"text_input":"1 2 3","max_tokens":3})");
  CHECK(stream.body.find("sampling") != std::string::npos);
  CHECK(s.num_workers_alive() == 2);
}
