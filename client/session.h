// rankserve-client's conversation with one server: readiness, finding the model and its contract,
// a KServe infer batch, a streamed answer. Blocking, one request at a time; used by client/main.cpp.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "client/options.h"
#include "client/protocol.h"
#include "net/http_client.h"

namespace rankserve::client {

// A served model and the KServe contract its metadata declares.
struct ServedModel {
  std::string name;
  std::optional<Contract> contract;  // none when the server has no KServe metadata for it
};

class ClientSession {
 public:
  // Throws Error(usage) for a malformed --url.
  explicit ClientSession(const ClientOptions& options);

  // Polls the readiness endpoint each second until it answers 200 (/v2/health/ready, or /v1/models
  // for the OpenAI protocols). Throws Error(runtime) "client: server <url> not ready within
  // --init-timeout-s=<s> s; last: <reason>" when --init-timeout-s passes first.
  void wait_ready() const;

  // The model to ask: --model-name, else the form's default (GPT or OPT), else the first model of
  // GET /v1/models whose metadata declares a known contract. `need_contract` (KServe infer) fails
  // with Error(runtime) naming the served models when none has a known contract.
  ServedModel resolve_model(bool need_contract) const;

  // One KServe infer with every prompt as a batch; returns one text per prompt (prompt + continuation).
  // Throws Error(runtime) for a transport failure, an error status (with the server's message) or a
  // response without the contract's output.
  std::vector<std::string> infer(const ServedModel& model, const std::vector<std::string>& prompts) const;

  // Streams the answer to `prompt` into `out`, flushing each piece, without a final newline. Throws
  // like infer(), and when the stream is cut off (a partial event, or no [DONE] for OpenAI).
  void stream(const ServedModel& model, const std::string& prompt, std::FILE* out) const;

  const std::string& url_text() const { return url_text_; }

 private:
  net::HttpRequest request(std::string method, std::string target, std::string body = {}) const;
  net::HttpResponse call(const net::HttpRequest& request, double timeout_s) const;
  // Throws Error(runtime) "client: POST <url><target> answered <status>: <server's message>" unless 2xx.
  void expect_success(const net::HttpRequest& request, const net::HttpResponse& response) const;

  ClientOptions options_;
  net::Url url_;
  bool grpc_ = false;  // --url grpc://host:port: KServe v2 over gRPC (client/grpc.h)
  std::string url_text_;
};

}  // namespace rankserve::client
