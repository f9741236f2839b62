// Triton's statistics extension (GET /v2/models[/{m}[/versions/{v}]]/stats) and the index of its
// model repository extension (POST /v2/repository/index), read from the service and the
// InferenceStats the KServe handlers record. Routed by router.cpp.
#pragma once

#include "net/exchange.h"
#include "net/server_context.h"

namespace rankserve::net {

// {"model_stats": [...]} for the model in `params`, or every model when params.model is "".
// Throws Error(not_found) for an unknown model or a version other than "1".
ServerResponse kserve_model_stats(const ServerContext& context, const RouteParams& params);

// [{"name", "version", "state", "reason"}] for the served model: READY, LOADING or UNAVAILABLE
// with the reason. A body {"ready": true} lists ready models only. Throws field_error for a body
// that is not that object.
ServerResponse kserve_repository_index(const ServerContext& context, const ServerRequest& request);

}  // namespace rankserve::net
