// What every handler needs: the options, the service, the metrics and the in-flight registry.
// Owned by HttpServer's implementation; handlers borrow it for one exchange.
#pragma once

#include "net/generation.h"
#include "net/http_server.h"
#include "net/metrics.h"

namespace rankserve::net {

struct ServerContext {
  const ServerOptions& options;
  GenerationService& service;
  Metrics& metrics;
  InflightRequests& inflight;

  GenerationContext generation() const { return {service, inflight, metrics}; }
  // The deadline of a request that names none: now + --request-timeout.
  Clock::time_point default_deadline() const {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.request_timeout_s));
  }
};

// Route parameters taken from the path.
struct RouteParams {
  std::string model;    // /v2/models/{model}, "" when the route has none
  std::string version;  // /versions/{version}, "" when not given
};

}  // namespace rankserve::net
