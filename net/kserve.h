// KServe v2 / Triton endpoints: server metadata, health, model metadata/config/readiness, infer
// (JSON and binary tensors), and Triton's generate extension (JSON and SSE). Routed by router.cpp;
// errors are thrown and converted there.
#pragma once

#include "net/exchange.h"
#include "net/kserve_models.h"
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

// The infer path below its transport (HTTP's kserve_infer and gRPC's ModelInfer/ModelStreamInfer):
// a decoded request checked against the model's contract and turned into one service request per
// sample, each with the request's deadline (parameters.timeout, else --request-timeout), at most
// `limit`. Throws field_error naming the input or output.
struct InferPlan {
  ModelContract contract;
  std::vector<TextRequest> samples;
  std::vector<std::string> prompts;  // samples[i].prompt
};
InferPlan kserve_plan_infer(const ServerContext& context, const ModelInfo& model, const InferRequest& request,
                            Clock::time_point limit);
// Plans, runs every sample to its end and returns the output tensors (the requested ones, all by
// default); counts the success from `started`. Throws what Generation throws (ClientGone, Error).
Task<std::vector<EncodedOutput>> kserve_run_infer(ServerContext& context, Exchange& exchange, const ModelInfo& model,
                                                  const InferRequest& request, Clock::time_point limit,
                                                  Clock::time_point started);
Task<void> kserve_generate(ServerContext& context, Exchange& exchange, RouteParams params, bool stream);

}  // namespace rankserve::net
