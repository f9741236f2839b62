// Routes one exchange to its handler, checks the API key, and converts whatever the handler throws
// into a protocol-shaped error response: the one place HTTP errors are made. Called by the session
// in http_server.cpp for every request.
#pragma once

#include "net/exchange.h"
#include "net/server_context.h"

namespace rankserve::net {

// Answers the exchange. Returns false when the connection must be closed (the client is gone).
// `metrics_port`: only /metrics and /v2/health/* are served. Never throws.
// Throws HttpError (401) unless --api-key is unset or `request` carries "Authorization: Bearer <key>".
void check_api_key(const ServerContext& context, const ServerRequest& request);

Task<bool> serve_exchange(ServerContext& context, Exchange& exchange, bool metrics_port);

}  // namespace rankserve::net
