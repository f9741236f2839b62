// clients tier: live multi-rank servers on tiny checkpoints (written by tests/reference/tiny_models.py
// with the real GPT-2 vocabulary), driven by real clients: curl, the official openai npm package and
// rankserve-client. A GPT-2 model at tp 2 serves the GPT (NeMo) contract; an OPT model with two
// data-parallel copies serves the OPT contract.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "tests/clients/live_server.h"
#include "tests/support/process.h"

using namespace std::chrono_literals;
using namespace rankserve::testing;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

Server& gpt_server() {
  static Server server("gpt2", "--gpus 2 --tp 2");
  return server;
}

Server& opt_server() {
  static Server server("opt", "--gpus 2 --tp 1");  // two data-parallel copies
  return server;
}

std::string sentence_of(const Reply& reply, int index = 0) {
  const json::value v = json::parse(reply.body);
  for (const auto& output : v.at("outputs").as_array()) {
    if (output.at("name") == "sentences" || output.at("name") == "output") {
      return std::string(output.at("data").as_array().at(static_cast<size_t>(index)).as_string());
    }
  }
  FAIL("no sentences/output tensor in " << reply.body);
  return "";
}

}  // namespace

TEST_CASE("curl: health, metadata, config and metrics answer on a 2-rank tensor-parallel server") {
  Server& s = gpt_server();
  CHECK(curl(s.url + "/v2/health/live").status == 200);
  CHECK(curl(s.url + "/v2/health/ready").status == 200);
  const Reply server_meta = curl(s.url + "/v2");
  CHECK(server_meta.status == 200);
  CHECK(server_meta.body.find("\"name\"") != std::string::npos);
  const Reply model = curl(s.url + "/v2/models/GPT");
  CHECK(model.status == 200);
  CHECK(model.body.find("prompts") != std::string::npos);
  CHECK(curl(s.url + "/v2/models/GPT/versions/1").status == 200);
  CHECK(curl(s.url + "/v2/models/GPT/ready").status == 200);
  const Reply config = curl(s.url + "/v2/models/GPT/config");
  CHECK(config.status == 200);
  CHECK(config.body.find("128") != std::string::npos);  // max_batch_size
  CHECK(curl(s.url + "/v2/models/OPT").status == 404);
  const Reply models = curl(s.url + "/v1/models");
  CHECK(models.status == 200);
  CHECK(models.body.find("\"GPT\"") != std::string::npos);
  const Reply metrics = curl(fmt::format("http://127.0.0.1:{}/metrics", s.metrics_port));
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("nv_inference_request_success") != std::string::npos);
  CHECK(metrics.body.find("rankserve_queue_size") != std::string::npos);
}

TEST_CASE("the GPT contract works with only prompts given and equals rankserve generate") {
  Server& s = gpt_server();
  // NeMo's defaults: greedy, add_BOS, max_length 30. generate --prompt adds no BOS for GPT-2, so the
  // comparison sends add_BOS false and the same length.
  const Reply minimal = post_json(s.url + "/v2/models/GPT/infer",
                                  R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["1 2 3"]}]})");
  REQUIRE_MESSAGE(minimal.status == 200, minimal.body);
  CHECK(sentence_of(minimal).rfind("1 2 3", 0) == 0);

  const Reply same = post_json(s.url + "/v2/models/GPT/infer", R"({"inputs":[
      {"name":"prompts","datatype":"BYTES","shape":[2,1],"data":["1 2 3","Hello, world"]},
      {"name":"max_length","datatype":"INT32","shape":[2,1],"data":[8,8]},
      {"name":"add_BOS","datatype":"BOOL","shape":[2,1],"data":[false,false]}]})");
  REQUIRE_MESSAGE(same.status == 200, same.body);
  for (int i = 0; i < 2; ++i) {
    const std::string prompt = i == 0 ? "1 2 3" : "Hello, world";
    const json::value expected = s.generate(prompt, 8);
    CHECK(sentence_of(same, i) == std::string(expected.at("text").as_string()));
  }
}

TEST_CASE("curl with a gzip or deflate body (tritonclient's request compression) answers as the plain body, and stats count it") {
  Server& s = gpt_server();
  const std::string body = R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["1 2 3"]},
                                         {"name":"max_length","datatype":"INT32","shape":[1,1],"data":[4]}]})";
  const std::string stats_url = s.url + "/v2/models/GPT/stats";
  const Reply before = curl(stats_url);
  REQUIRE_MESSAGE(before.status == 200, before.body);
  const json::value before_stats = json::parse(before.body).at("model_stats").at(0);

  const Reply plain = post_json(s.url + "/v2/models/GPT/infer", body);
  REQUIRE_MESSAGE(plain.status == 200, plain.body);
  // gzip(1) and python3's zlib write the compressed files, as a client's library would.
  const std::string json_file = text_file("compressed-body", body);
  REQUIRE(run(fmt::format("gzip -c {} > {}.gz", json_file, json_file)).code == 0);
  REQUIRE(
      run(fmt::format(
              "/usr/bin/python3 -c 'import sys,zlib; sys.stdout.buffer.write(zlib.compress(open(sys.argv[1],\"rb\").read()))' "
              "{} > {}.zz",
              json_file, json_file))
          .code == 0);
  for (const auto& sent : {std::pair{"gzip", json_file + ".gz"}, std::pair{"deflate", json_file + ".zz"}}) {
    const std::string coding = sent.first;  // not a structured binding: clang 14 cannot capture one
    const std::string& file = sent.second;
    CAPTURE(coding);
    const Reply r = curl(fmt::format("-X POST -H 'Content-Type: application/json' -H 'Content-Encoding: {}' --data-binary @{} {}",
                                     coding, file, s.url + "/v2/models/GPT/infer"));
    CHECK_MESSAGE(r.status == 200, r.body);
    CHECK(r.body == plain.body);
  }
  const Reply corrupt =
      curl(fmt::format("-X POST -H 'Content-Encoding: gzip' --data-binary @{} {}", json_file, s.url + "/v2/models/GPT/infer"));
  CHECK(corrupt.status == 400);
  CHECK(corrupt.body.find("Content-Encoding gzip") != std::string::npos);

  const Reply after = curl(stats_url);
  REQUIRE_MESSAGE(after.status == 200, after.body);
  const json::value stats = json::parse(after.body).at("model_stats").at(0);
  auto count = [](const json::value& v, const char* which) {
    return v.at("inference_stats").at(which).at("count").to_number<uint64_t>();
  };
  CHECK(count(stats, "success") == count(before_stats, "success") + 3);
  CHECK(stats.at("inference_count").to_number<uint64_t>() == before_stats.at("inference_count").to_number<uint64_t>() + 3);
  CHECK(stats.at("execution_count").to_number<uint64_t>() > before_stats.at("execution_count").to_number<uint64_t>());
  CHECK(stats.at("inference_stats").at("compute_infer").at("ns").to_number<uint64_t>() > 0);
  const Reply index = curl(fmt::format("-X POST {}/v2/repository/index", s.url));
  CHECK(index.status == 200);
  CHECK(index.body.find(R"("state":"READY")") != std::string::npos);
  const Reply metrics = curl(fmt::format("http://127.0.0.1:{}/metrics", s.metrics_port));
  CHECK(metrics.body.find("nv_inference_exec_count{model=\"GPT\",version=\"1\"} ") != std::string::npos);
  CHECK(metrics.body.find("nv_inference_queue_duration_us{model=\"GPT\",version=\"1\"} ") != std::string::npos);
}

TEST_CASE("the official openai npm package: completions, chat, streaming, usage and errors") {
  Server& s = gpt_server();
  auto r = run(fmt::format("node {}/tests/clients/openai_check.mjs {} GPT", kSource, s.url), 300s);
  INFO(r.output);
  REQUIRE(r.code == 0);
  // Its last line is the JSON summary (warnings may come before it).
  std::string last = r.output;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  const json::value out = json::parse(last.substr(last.rfind('\n') + 1));
  // Greedy completion equals rankserve generate's continuation of the same prompt.
  const json::value expected = s.generate("1 2 3", 5);
  const std::string continuation = std::string(expected.at("text").as_string()).substr(5);
  CHECK(std::string(out.at("completion").as_string()) == continuation);
}

TEST_CASE("rankserve-client in the NeMo form prints each sentence after a line of 32 '='") {
  Server& s = gpt_server();
  auto r = run(fmt::format("{} --url {} --prompts '1 2 3' 'Q: Are you going for a lunch?' --output-len 6", kClient, s.url), 120s);
  INFO(r.output);
  REQUIRE(r.code == 0);
  const std::string bar(32, '=');
  const size_t first = r.output.find(bar + "\n1 2 3");
  CHECK(first != std::string::npos);
  CHECK(r.output.find(bar + "\nQ: Are you going for a lunch?", first) != std::string::npos);
}

TEST_CASE("rankserve-client --protocol openai and openai-chat decode greedily by default, as generate does") {
  Server& s = gpt_server();
  const json::value expected = s.generate("1 2 3", 6);
  for (const char* protocol : {"openai", "openai-chat"}) {
    auto r =
        run(fmt::format("{} --url {} --protocol {} --model-name GPT --prompts '1 2 3' --output-len 6", kClient, s.url, protocol),
            120s);
    INFO(protocol << ": " << r.output);
    REQUIRE(r.code == 0);
    if (std::string(protocol) == "openai")
      CHECK(r.output.find(std::string(expected.at("text").as_string())) != std::string::npos);
  }
}

TEST_CASE("rankserve-client in the OPT form prints output: ['...'] from a server with two data-parallel copies") {
  Server& s = opt_server();
  auto r = run(fmt::format("{} --server-url {} --input 'The capital of Poland is' --output-length 3", kClient, s.url), 120s);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("output: ['The capital of Poland is") != std::string::npos);
}

TEST_CASE("rankserve-client in the NeMo form against a server of only OPT uses it without a 404 in the server's log") {
  Server& s = opt_server();
  auto r = run(fmt::format("{} --url {} --prompts '1 2 3' --output-len 3", kClient, s.url), 120s);
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK(r.output.find("using 'OPT'") != std::string::npos);
  CHECK(r.output.find(std::string(32, '=') + "\n1 2 3") != std::string::npos);
  CHECK(s.process->output().find("/v2/models/GPT -> 404") == std::string::npos);
}

TEST_CASE("the OPT contract takes a batch of prompts of different lengths, each equal to generate") {
  Server& s = opt_server();
  const Reply reply = post_json(s.url + "/v2/models/OPT/infer", R"({"inputs":[
      {"name":"input","datatype":"BYTES","shape":[3,1],"data":["The capital of Poland is","Hi","A much longer prompt than the others, to differ in length"]},
      {"name":"output_length","datatype":"INT64","shape":[3,1],"data":[4,4,4]}]})");
  REQUIRE_MESSAGE(reply.status == 200, reply.body);
  const char* prompts[] = {"The capital of Poland is", "Hi", "A much longer prompt than the others, to differ in length"};
  for (int i = 0; i < 3; ++i) {
    CHECK(sentence_of(reply, i) == std::string(s.generate(prompts[i], 4).at("text").as_string()));
  }
}

TEST_CASE("bad requests each get a clear 4xx and the server keeps serving") {
  Server& s = gpt_server();
  struct Bad {
    std::string path, body;
    int status;
    std::string mentions;
  };
  const std::vector<Bad> corpus = {
      {"/v2/models/GPT/infer", "{not json", 400, ""},
      {"/v2/models/GPT/infer", R"({"inputs":[]})", 400, "prompts"},
      {"/v2/models/GPT/infer", R"({"inputs":[{"name":"prompts","datatype":"INT32","shape":[1,1],"data":[1]}]})", 400, "prompts"},
      {"/v2/models/GPT/infer", R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[2,1],"data":["a"]}]})", 400,
       "prompts"},
      {"/v2/models/GPT/infer", R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["a"]},
                                             {"name":"temperature","datatype":"FP32","shape":[1,1],"data":["hot"]}]})",
       400, "temperature"},
      {"/v2/models/nope/infer", R"({"inputs":[]})", 404, "nope"},
      {"/v1/completions", R"({"model":"GPT","prompt":"x","max_tokens":"many"})", 400, "max_tokens"},
      {"/v1/completions", R"({"model":"GPT","prompt":"x","max_tokens":100000000})", 400, "max_tokens=100000000"},
      {"/v2/models/GPT/generate", R"({"text_input":"a","max_tokens":100000000})", 400, "max_tokens=100000000"},
      {"/v1/completions", R"({"model":"GPT","prompt":")" + std::string(3000, 'a') + " " + std::string(3000, 'b') + R"("})", 400,
       "context"},
      {"/v1/chat/completions", R"({"model":"GPT","messages":"hello"})", 400, "messages"},
      {"/v1/completions", R"({"model":"other","prompt":"x"})", 404, "other"},
  };
  for (const Bad& bad : corpus) {
    INFO(bad.path << " " << bad.body.substr(0, 200));
    const Reply reply = post_json(s.url + bad.path, bad.body);
    INFO(reply.body);
    CHECK(reply.status == bad.status);
    CHECK(reply.body.find("error") != std::string::npos);
    if (!bad.mentions.empty()) CHECK(reply.body.find(bad.mentions) != std::string::npos);
  }
  const Reply invalid_utf8 = post_json(s.url + "/v1/completions", "{\"model\":\"GPT\",\"prompt\":\"\xff\xfe\",\"max_tokens\":2}");
  CHECK(invalid_utf8.status >= 400);
  CHECK(invalid_utf8.status < 500);
  CHECK(curl(s.url + "/v2/health/ready").status == 200);
  const Reply after = post_json(s.url + "/v1/completions", R"({"model":"GPT","prompt":"1 2 3","max_tokens":2,"temperature":0})");
  CHECK(after.status == 200);
}
