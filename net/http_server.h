// The HTTP front end of global rank 0: Triton/KServe v2 (JSON and binary tensors), the OpenAI API
// with server-sent events, Prometheus metrics and health, over a GenerationService. Boost.Beast stays
// inside net/; this facade includes none of it. Constructed and destroyed by one thread (the launcher).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/generation_service.h"

namespace rankserve::net {

inline constexpr int kDefaultHttpPort = 8000;
inline constexpr int kDefaultMetricsPort = 8002;

struct ServerOptions {
  std::string address = "0.0.0.0";         // --http-address
  int http_port = kDefaultHttpPort;        // --http-port; 0 picks a free port (tests)
  int metrics_port = kDefaultMetricsPort;  // --metrics-port; 0 picks a free port; -1 none (still at /metrics)
  int num_threads = 4;                     // I/O threads; handlers never block them (see GenerationSink; submits
                                           // run on a small pool of their own)
  std::size_t max_body_bytes = 8u << 20;   // larger bodies get 413
  double header_timeout_s = 30;            // a request's header must arrive within this (slowloris)
  double body_timeout_s = 60;              // a request's body must arrive within this once its header has
  double idle_timeout_s = 120;             // a keep-alive connection with no request is closed after this
  double write_timeout_s = 60;             // one response write (or one streamed chunk) must complete within this
  double request_timeout_s = 600;          // default deadline of an inference request (KServe `timeout` overrides)
  int retry_after_s = 1;                   // Retry-After of a 429
  std::string api_key;                     // non-empty: inference endpoints need "Authorization: Bearer <key>"
  // An Error's message as clients read it in an error body: the command that starts the server names
  // the runtime settings it mentions by their flags (launcher::user_message). Empty: what(). Called
  // on any I/O thread.
  std::function<std::string(const Error&)> error_message;
};

class Metrics;
struct ServerContext;

class HttpServer {
 public:
  // Binds every port before returning and starts serving on its own threads. Throws Error(usage)
  // naming every port that is in use or cannot be bound, e.g. "server: cannot listen on 0.0.0.0:8000
  // (--http-port): address in use; 0.0.0.0:8002 (--metrics-port): address in use".
  HttpServer(const ServerOptions& options, GenerationService& service);
  ~HttpServer();  // stop()

  int http_port() const;     // the bound port (the chosen one when 0 was asked)
  int metrics_port() const;  // -1 when none

  // What the handlers share (service, metrics, in-flight registry, submit pool), for the gRPC front
  // end of the same process; valid until stop() returns, which must come after that front end stopped.
  ServerContext& context();

  // The counters /metrics renders, with Triton's per-model statistics (metrics.h). Another surface
  // beside this server (gRPC) records into the same ones; any thread, for the server's lifetime.
  Metrics& metrics();

  // Closes the listeners and every connection; in-flight requests are cancelled. Waits for the
  // GenerationService::submit calls in progress to return. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankserve::net
