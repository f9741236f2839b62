#include "net/router.h"

#include <fmt/format.h>

#include <optional>

#include "core/log.h"
#include "net/errors.h"
#include "net/kserve.h"
#include "net/kserve_stats.h"
#include "net/openai.h"
#include "net/sse.h"

namespace rankserve::net {

namespace {

enum class RouteId {
  server_metadata,
  health_live,
  health_ready,
  model_metadata,
  model_ready,
  model_config,
  model_stats,
  all_stats,
  repository_index,
  infer,
  generate,
  generate_stream,
  openai_models,
  openai_model,
  completions,
  chat_completions,
  metrics,
};

struct Route {
  RouteId id;
  std::string_view endpoint;  // the metrics label
  std::string_view method;
  bool needs_key;         // inference endpoints need the API key when one is set
  bool kserve_inference;  // counted in nv_inference_request_*
  bool on_metrics_port;
};

constexpr Route kRoutes[] = {
    {RouteId::server_metadata, "/v2", "GET", false, false, false},
    {RouteId::health_live, "/v2/health/live", "GET", false, false, true},
    {RouteId::health_ready, "/v2/health/ready", "GET", false, false, true},
    {RouteId::model_metadata, "/v2/models/{model}", "GET", false, false, false},
    {RouteId::model_ready, "/v2/models/{model}/ready", "GET", false, false, false},
    {RouteId::model_config, "/v2/models/{model}/config", "GET", false, false, false},
    {RouteId::model_stats, "/v2/models/{model}/stats", "GET", false, false, false},
    {RouteId::all_stats, "/v2/models/stats", "GET", false, false, false},
    {RouteId::repository_index, "/v2/repository/index", "POST", false, false, false},
    {RouteId::infer, "/v2/models/{model}/infer", "POST", true, true, false},
    {RouteId::generate, "/v2/models/{model}/generate", "POST", true, true, false},
    {RouteId::generate_stream, "/v2/models/{model}/generate_stream", "POST", true, true, false},
    {RouteId::openai_models, "/v1/models", "GET", true, false, false},
    {RouteId::openai_model, "/v1/models/{model}", "GET", true, false, false},
    {RouteId::completions, "/v1/completions", "POST", true, false, false},
    {RouteId::chat_completions, "/v1/chat/completions", "POST", true, false, false},
    {RouteId::metrics, "/metrics", "GET", false, false, true},
};

const Route& route_of(RouteId id) {
  for (const Route& r : kRoutes) {
    if (r.id == id) return r;
  }
  return kRoutes[0];
}

std::string percent_decode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

struct Match {
  RouteId id;
  RouteParams params;
};

// /v2/models/{model}[/versions/{v}][/ready|/config|/stats|/infer|/generate|/generate_stream]. The served
// name may contain '/' (facebook/opt-125m): it is matched whole before splitting on '/'.
std::optional<Match> match_model_path(std::string_view rest, const std::string& served) {
  Match m;
  std::string decoded = percent_decode(rest);
  std::string_view r = decoded;
  if (r.substr(0, served.size()) == served && (r.size() == served.size() || r[served.size()] == '/')) {
    m.params.model = served;
    r.remove_prefix(served.size());
  } else {
    const size_t slash = r.find('/');
    m.params.model = std::string(r.substr(0, slash));
    r.remove_prefix(slash == std::string_view::npos ? r.size() : slash);
  }
  if (m.params.model.empty()) return std::nullopt;
  if (r.substr(0, 10) == "/versions/") {
    r.remove_prefix(10);
    const size_t slash = r.find('/');
    m.params.version = std::string(r.substr(0, slash));
    r.remove_prefix(slash == std::string_view::npos ? r.size() : slash);
    if (m.params.version.empty()) return std::nullopt;
  }
  if (r.empty() || r == "/") m.id = RouteId::model_metadata;
  else if (r == "/ready") m.id = RouteId::model_ready;
  else if (r == "/config") m.id = RouteId::model_config;
  else if (r == "/stats") m.id = RouteId::model_stats;
  else if (r == "/infer") m.id = RouteId::infer;
  else if (r == "/generate") m.id = RouteId::generate;
  else if (r == "/generate_stream") m.id = RouteId::generate_stream;
  else return std::nullopt;
  return m;
}

std::optional<Match> match_path(std::string_view path, const std::string& served) {
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/v2") return Match{RouteId::server_metadata, {}};
  if (path == "/v2/health/live") return Match{RouteId::health_live, {}};
  if (path == "/v2/health/ready") return Match{RouteId::health_ready, {}};
  // Triton's statistics of every model; matched before model names, as Triton does.
  if (path == "/v2/models/stats") return Match{RouteId::all_stats, {}};
  if (path.substr(0, 11) == "/v2/models/") return match_model_path(path.substr(11), served);
  if (path == "/v2/repository/index") return Match{RouteId::repository_index, {}};
  if (path == "/v1/models") return Match{RouteId::openai_models, {}};
  if (path.substr(0, 11) == "/v1/models/") return Match{RouteId::openai_model, {percent_decode(path.substr(11)), ""}};
  if (path == "/v1/completions") return Match{RouteId::completions, {}};
  if (path == "/v1/chat/completions") return Match{RouteId::chat_completions, {}};
  if (path == "/metrics") return Match{RouteId::metrics, {}};
  return std::nullopt;
}

// Compares without an early exit, so the time taken says nothing about the key.
bool same_key(std::string_view given, std::string_view key) {
  if (given.size() != key.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  return diff == 0;
}

ServerResponse metrics_response(const ServerContext& context) {
  ServerResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = context.metrics.render(context.service.status(), context.service.model());
  return r;
}

Task<void> run_route(ServerContext& context, Exchange& exchange, const Match& match) {
  switch (match.id) {
    case RouteId::server_metadata: co_await exchange.respond(kserve_server_metadata(context)); break;
    case RouteId::health_live: co_await exchange.respond(kserve_health_live()); break;
    case RouteId::health_ready: co_await exchange.respond(kserve_health_ready(context)); break;
    case RouteId::model_metadata: co_await exchange.respond(kserve_model_metadata(context, match.params)); break;
    case RouteId::model_ready: co_await exchange.respond(kserve_model_ready(context, match.params)); break;
    case RouteId::model_config: co_await exchange.respond(kserve_model_config(context, match.params)); break;
    case RouteId::model_stats:
    case RouteId::all_stats: co_await exchange.respond(kserve_model_stats(context, match.params)); break;
    case RouteId::repository_index: co_await exchange.respond(kserve_repository_index(context, exchange.request())); break;
    case RouteId::infer: co_await kserve_infer(context, exchange, match.params); break;
    case RouteId::generate: co_await kserve_generate(context, exchange, match.params, false); break;
    case RouteId::generate_stream: co_await kserve_generate(context, exchange, match.params, true); break;
    case RouteId::openai_models: co_await exchange.respond(openai_list_models(context)); break;
    case RouteId::openai_model: co_await exchange.respond(openai_retrieve_model(context, match.params)); break;
    case RouteId::completions: co_await openai_completions(context, exchange); break;
    case RouteId::chat_completions: co_await openai_chat_completions(context, exchange); break;
    case RouteId::metrics: co_await exchange.respond(metrics_response(context)); break;
  }
}

FailureReason failure_reason(int status) {
  if (status == 429 || status == 503) return FailureReason::rejected;
  if (status == 499) return FailureReason::canceled;
  if (status >= 500) return FailureReason::backend;
  return FailureReason::other;
}

constexpr int kClientClosedStatus = 499;  // nginx's "client closed request", for the metrics only

}  // namespace

void check_api_key(const ServerContext& context, const ServerRequest& request) {
  const std::string& key = context.options.api_key;
  if (key.empty()) return;
  const auto header = request.header("Authorization");
  const std::string_view prefix = "Bearer ";
  if (header && header->substr(0, prefix.size()) == prefix && same_key(header->substr(prefix.size()), key)) return;
  ErrorDetail detail;
  detail.status = 401;
  detail.openai_code = "invalid_api_key";
  detail.headers.emplace_back("WWW-Authenticate", "Bearer");
  throw HttpError(ErrorCode::bad_request,
                  header ? "auth: the API key in the Authorization header is wrong; expected the server's --api-key"
                         : "auth: no Authorization header; expected 'Authorization: Bearer <key>' (the server's --api-key)",
                  std::move(detail));
}

Task<bool> serve_exchange(ServerContext& context, Exchange& exchange, bool metrics_port) {
  const ServerRequest& request = exchange.request();
  const Surface surface = request.path.substr(0, 4) == "/v1/" || request.path == "/v1" ? Surface::openai : Surface::kserve;
  std::string_view endpoint = "unmatched";
  const Route* route = nullptr;
  std::string model_label = context.service.model().name;
  const Clock::time_point received = Clock::now();
  std::exception_ptr error;
  bool client_gone = false;
  try {
    const std::optional<Match> match = match_path(request.path, context.service.model().name);
    if (match) route = &route_of(match->id);
    if (!match || (metrics_port && !route->on_metrics_port)) {
      route = nullptr;
      throw HttpError(ErrorCode::not_found,
                      fmt::format("server: no route {} {}{}", request.method, request.path,
                                  metrics_port ? " on the metrics port (it serves /metrics and /v2/health/*)"
                                               : " (see docs/kserve.md, docs/openai.md)"),
                      {});
    }
    endpoint = route->endpoint;
    if (request.method != route->method) {
      ErrorDetail detail;
      detail.status = 405;
      detail.headers.emplace_back("Allow", std::string(route->method));
      throw HttpError(ErrorCode::bad_request,
                      fmt::format("server: {} does not accept {}; expected {}", route->endpoint, request.method, route->method),
                      std::move(detail));
    }
    if (route->needs_key) check_api_key(context, request);
    co_await run_route(context, exchange, *match);
  } catch (const ClientGone&) {
    client_gone = true;
  } catch (...) {
    error = std::current_exception();
  }
  const bool inference = route != nullptr && route->kserve_inference;
  if (client_gone) {
    context.metrics.count_http_request(endpoint, kClientClosedStatus);
    if (inference) context.metrics.count_inference_failure(model_label, FailureReason::canceled, received);
    log::debug("http: {} {}: the client went away; its request was cancelled", request.method, request.path);
    co_return false;
  }
  if (!error) {
    context.metrics.count_http_request(endpoint, exchange.status());
    co_return true;
  }
  const ErrorReply reply = classify_error(error, context.options);
  log::warn("http: {} {} -> {}: {}", request.method, request.path, reply.status, reply.message);
  context.metrics.count_http_request(endpoint, reply.status);
  if (inference) context.metrics.count_inference_failure(model_label, failure_reason(reply.status), received);
  try {
    if (exchange.streaming()) {
      // Headers and a 200 are already out: the error travels as an event, then the stream ends.
      co_await exchange.write_chunk(sse_frame(error_body(surface, reply)));
      if (surface == Surface::openai) co_await exchange.write_chunk(std::string(kSseDone));
      co_await exchange.end_stream();
    } else if (!exchange.responded()) {
      co_await exchange.respond(error_response(surface, reply));
    } else {
      co_return false;  // a response went out and then something failed: the connection state is unknown
    }
  } catch (const ClientGone&) {
    co_return false;
  }
  co_return true;
}

}  // namespace rankserve::net
