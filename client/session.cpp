#include "client/session.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "client/grpc.h"
#include "core/error.h"
#include "core/log.h"
#include "net/sse_parser.h"

namespace rankserve::client {

namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds to_ms(double seconds) { return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)); }

constexpr double kReadyPollTimeoutS = 5;  // one readiness probe; the loop's deadline is --init-timeout-s

struct Final {  // a readiness answer that ends the wait at once
  std::string message;
};

}  // namespace

namespace {

// grpc://host:port is checked as http://host:port is (the host and a port are required).
net::Url parse_client_url(const std::string& url) {
  if (!is_grpc_url(url)) return net::parse_url(url, "--url");
  net::Url parsed = net::parse_url("http://" + url.substr(kGrpcScheme.size()), "--url");
  if (!parsed.target.empty())
    throw Error(ErrorCode::usage, fmt::format("options: --url={} has a path; grpc://host:port has none", url));
  return parsed;
}

}  // namespace

ClientSession::ClientSession(const ClientOptions& options)
    : options_(options),
      url_(parse_client_url(options.url)),
      grpc_(is_grpc_url(options.url)),
      url_text_(grpc_ ? fmt::format("grpc://{}:{}", url_.host, url_.port) : net::to_string(url_)) {
  if (grpc_ && options_.protocol != StreamProtocol::kserve) {
    throw Error(ErrorCode::usage, "options: --protocol openai and openai-chat need an http:// --url (gRPC is KServe's)");
  }
}

net::HttpRequest ClientSession::request(std::string method, std::string target, std::string body) const {
  net::HttpRequest out{std::move(method), std::move(target), std::move(body), {}};
  if (!options_.api_key.empty()) out.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
  return out;
}

net::HttpResponse ClientSession::call(const net::HttpRequest& request, double timeout_s) const {
  if (grpc_) return grpc_exchange(url_.host + ":" + url_.port, request, to_ms(timeout_s));
  return net::http_request(url_, request, to_ms(timeout_s));
}

void ClientSession::expect_success(const net::HttpRequest& request, const net::HttpResponse& response) const {
  if (response.status >= 200 && response.status < 300) return;
  throw Error(ErrorCode::runtime, fmt::format("client: {} {}{} answered {}: {}", request.method, url_text_, request.target,
                                              response.status, error_message(response.body)));
}

void ClientSession::wait_ready() const {
  const std::string path = options_.protocol == StreamProtocol::kserve ? "/v2/health/ready" : "/v1/models";
  const auto deadline = Clock::now() + std::chrono::duration<double>(options_.init_timeout_s);
  std::string last_problem;
  while (Clock::now() < deadline) {
    try {
      const double left_s = std::chrono::duration<double>(deadline - Clock::now()).count();
      const net::HttpResponse response = call(request("GET", path), std::clamp(left_s, 0.1, kReadyPollTimeoutS));
      if (response.status == 200) return;
      last_problem = fmt::format("{} answered {}", grpc_ ? "ServerReady" : path, response.status);
      if (const std::string why = error_message(response.body); !why.empty() && grpc_) last_problem += ": " + why;
      // A server that refuses the client (401, 403) or has no such endpoint (404) will not change its mind.
      if (response.status == 401 || response.status == 403 || response.status == 404) {
        throw Final{fmt::format("client: {}{} answered {}: {}{}", url_text_, path, response.status, error_message(response.body),
                                response.status == 404 ? " (is --url a rankserve or Triton server? --protocol selects the API)"
                                                       : " (give the server's key with --api-key)")};
      }
    } catch (const Final& final) {
      throw Error(ErrorCode::runtime, final.message);
    } catch (const Error& e) {
      last_problem = e.what();
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // the client polls; the server never does
  }
  throw Error(ErrorCode::runtime, fmt::format("client: server {} not ready within --init-timeout-s={} s; last: {}", options_.url,
                                              options_.init_timeout_s, last_problem));
}

ServedModel ClientSession::resolve_model(bool need_contract) const {
  auto metadata = [&](const std::string& name) -> std::optional<net::HttpResponse> {
    net::HttpResponse response = call(request("GET", model_path(name)), options_.timeout_s);
    if (response.status == 404) return std::nullopt;
    return response;
  };
  auto served_ids = [&] {
    const net::HttpResponse response = call(request("GET", "/v1/models"), options_.timeout_s);
    return response.status == 200 ? model_ids(response.body) : std::vector<std::string>{};
  };
  if (options_.protocol != StreamProtocol::kserve) {  // OpenAI: the name only; empty lets the server choose
    if (!options_.model_name.empty()) return ServedModel{options_.model_name, std::nullopt};
    const auto ids = served_ids();
    return ServedModel{ids.empty() ? std::string() : ids.front(), std::nullopt};
  }

  if (!options_.model_name.empty()) {
    const auto response = metadata(options_.model_name);
    if (!response) {
      const auto ids = served_ids();
      throw Error(ErrorCode::runtime,
                  fmt::format("client: {} has no model '{}'; it serves: {} (change --model-name)", url_text_, options_.model_name,
                              ids.empty() ? "(GET /v1/models lists none)" : fmt::format("{}", fmt::join(ids, ", "))));
    }
    const auto contract = response->status == 200 ? contract_from_metadata(response->body) : std::nullopt;
    if (need_contract && !contract) {
      throw Error(ErrorCode::runtime,
                  fmt::format("client: model '{}' on {} declares neither the NeMo inputs (prompts) nor the "
                              "OPT inputs (input, output_length); metadata answered {}: {}",
                              options_.model_name, url_text_, response->status, error_message(response->body)));
    }
    return ServedModel{options_.model_name, contract};
  }

  const std::string preferred = options_.form == ClientForm::opt ? "OPT" : "GPT";
  // The list first (rankserve's /v1/models), so a server without the preferred model is not asked for
  // it (a 404 in its log each time); a server with no list (Triton) is asked directly.
  const auto ids = served_ids();
  if (ids.empty() || std::find(ids.begin(), ids.end(), preferred) != ids.end()) {
    if (const auto response = metadata(preferred); response && response->status == 200) {
      if (const auto contract = contract_from_metadata(response->body)) return ServedModel{preferred, contract};
    }
  }
  for (const auto& id : ids) {
    if (id == preferred) continue;
    const auto response = metadata(id);
    if (!response || response->status != 200) continue;
    if (const auto contract = contract_from_metadata(response->body)) {
      log::info("model '{}' not served; using '{}' ({})", preferred, id, to_string(*contract));
      return ServedModel{id, contract};
    }
  }
  if (need_contract) {
    throw Error(
        ErrorCode::runtime,
        fmt::format("client: {} serves no model with the NeMo or OPT contract (models: {}); expected '{}' "
                    "(name one with --model-name)",
                    url_text_, ids.empty() ? "none listed at /v1/models" : fmt::format("{}", fmt::join(ids, ", ")), preferred));
  }
  return ServedModel{ids.empty() ? preferred : ids.front(), std::nullopt};
}

std::vector<std::string> ClientSession::infer(const ServedModel& model, const std::vector<std::string>& prompts) const {
  const Contract contract = model.contract.value_or(options_.form == ClientForm::opt ? Contract::opt : Contract::nemo);
  const net::HttpRequest infer_request =
      request("POST", model_path(model.name) + "/infer", infer_body(contract, prompts, options_.params));
  const net::HttpResponse response = call(infer_request, options_.timeout_s);
  expect_success(infer_request, response);
  std::vector<std::string> texts = infer_outputs(response.body, output_name(contract));
  if (texts.size() != prompts.size()) {
    throw Error(ErrorCode::runtime, fmt::format("client: {}{} returned {} '{}' for {} prompts; expected one each", url_text_,
                                                infer_request.target, texts.size(), output_name(contract), prompts.size()));
  }
  return texts;
}

void ClientSession::stream(const ServedModel& model, const std::string& prompt, std::FILE* out) const {
  if (grpc_) {  // ModelStreamInfer: the contract's infer request, one response per piece of text
    const Contract contract = model.contract.value_or(options_.form == ClientForm::opt ? Contract::opt : Contract::nemo);
    const net::HttpRequest infer_request =
        request("POST", model_path(model.name) + "/infer", infer_body(contract, {prompt}, options_.params));
    grpc_stream(url_.host + ":" + url_.port, infer_request, to_ms(options_.timeout_s), [out](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), out);
      std::fflush(out);  // a piece is shown as soon as it arrives
    });
    return;
  }
  std::string target;
  switch (options_.protocol) {
    case StreamProtocol::kserve: target = model_path(model.name) + "/generate_stream"; break;
    case StreamProtocol::openai: target = "/v1/completions"; break;
    case StreamProtocol::openai_chat: target = "/v1/chat/completions"; break;
  }
  net::HttpRequest stream_request = request("POST", target, stream_body(options_.protocol, model.name, prompt, options_.params));
  stream_request.headers.emplace_back("Accept", "text/event-stream");
  net::SseParser parser;
  bool done = false;
  const net::HttpResponse response =
      net::http_request_stream(url_, stream_request, to_ms(options_.timeout_s), [&](std::string_view chunk) {
        for (const net::SseEvent& event : parser.feed(chunk)) {
          if (event.event == "error") {
            throw Error(ErrorCode::runtime, fmt::format("client: the server ended the stream: {}", error_message(event.data)));
          }
          const StreamPiece piece = stream_piece(options_.protocol, event.data);
          if (piece.done) {
            done = true;
            return false;
          }
          std::fputs(piece.text.c_str(), out);
          std::fflush(out);  // a piece is shown as soon as it arrives
        }
        return true;
      });
  expect_success(stream_request, response);
  // generate_stream ends by closing the stream; OpenAI ends with "data: [DONE]".
  if (parser.has_partial_event() || (options_.protocol != StreamProtocol::kserve && !done)) {
    throw Error(ErrorCode::runtime, fmt::format("client: the stream of POST {}{} was cut off before its end{}", url_text_, target,
                                                options_.protocol != StreamProtocol::kserve ? " (no data: [DONE])" : ""));
  }
}

}  // namespace rankserve::client
