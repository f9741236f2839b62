// KServe v2 / Triton endpoints: server metadata, health, model metadata/config/readiness, infer
// (JSON and binary tensors), and Triton's generate extension (JSON and SSE). Routed by router.cpp;
// errors are thrown and converted there.
#pragma once

#include "net/exchange.h"
#include "net/server_context.h"

namespace rankserve::net {

// The served model named by `params`; throws Error(not_found) for another name or a version other than "1".
const ModelInfo& find_model(const ServerContext& context, const RouteParams& params);

ServerResponse kserve_server_metadata(const ServerContext& context);
ServerResponse kserve_health_live();
// 200 iff the service is ready; 503 with the reason otherwise.
ServerResponse kserve_health_ready(const ServerContext& context);
// These throw Error(not_found) for an unknown model or a version other than "1".
ServerResponse kserve_model_metadata(const ServerContext& context, const RouteParams& params);
ServerResponse kserve_model_ready(const ServerContext& context, const RouteParams& params);
ServerResponse kserve_model_config(const ServerContext& context, const RouteParams& params);

Task<void> kserve_infer(ServerContext& context, Exchange& exchange, RouteParams params);
Task<void> kserve_generate(ServerContext& context, Exchange& exchange, RouteParams params, bool stream);

}  // namespace rankserve::net
