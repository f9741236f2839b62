// What every handler needs: the options, the service, the metrics and the in-flight registry.
// Owned by HttpServer's implementation; handlers borrow it for one exchange.
#pragma once

#include <chrono>

#include "net/generation.h"
#include "net/http_server.h"
#include "net/metrics.h"

namespace rankserve::net {

// now + `seconds` (>= 0), saturating: a span longer than the steady clock can still count (about 292
// years of nanoseconds from its epoch), or infinity, is Clock::time_point::max(), i.e. no deadline.
inline Clock::time_point deadline_after(double seconds) {
  const Clock::time_point now = Clock::now();
  // Compared with a second to spare: a double this large is exact to well under a microsecond.
  const double room = std::chrono::duration<double>(Clock::time_point::max() - now).count() - 1.0;
  if (!(seconds < room)) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

struct ServerContext {
  const ServerOptions& options;
  GenerationService& service;
  Metrics& metrics;
  InflightRequests& inflight;
  boost::asio::thread_pool& work_pool;  // GenerationService::submit runs here, never on an I/O thread

  GenerationContext generation() const { return {service, inflight, metrics, work_pool}; }
  // The deadline of a request that names none: now + --request-timeout.
  Clock::time_point default_deadline() const { return deadline_after(options.request_timeout_s); }
};

// Route parameters taken from the path.
struct RouteParams {
  std::string model;    // /v2/models/{model}, "" when the route has none
  std::string version;  // /versions/{version}, "" when not given
};

}  // namespace rankserve::net
