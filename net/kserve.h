// KServe v2 / Triton endpoints: server metadata, health, model metadata/config/readiness, infer
// (JSON and binary tensors), and Triton's generate extension (JSON and SSE). Routed by router.cpp;
// errors are thrown and converted there.
#pragma once

#include "net/exchange.h"
#include "net/kserve_models.h"
#include "net/server_context.h"

namespace rankserve::net {

ServerResponse kserve_server_metadata(const ServerContext& context);
ServerResponse kserve_health_live();
// 200 iff the service is ready; 503 with the reason otherwise.
ServerResponse kserve_health_ready(const ServerContext& context);
// The served model when `params` name it (a version, if any, must be "1"); else throws Error(not_found).
const ModelInfo& kserve_find_model(const ServerContext& context, const RouteParams& params);
// These throw Error(not_found) for an unknown model or a version other than "1".
ServerResponse kserve_model_metadata(const ServerContext& context, const RouteParams& params);
ServerResponse kserve_model_ready(const ServerContext& context, const RouteParams& params);
ServerResponse kserve_model_config(const ServerContext& context, const RouteParams& params);

Task<void> kserve_infer(ServerContext& context, Exchange& exchange, RouteParams params);

// The infer path below its transport (HTTP's kserve_infer and gRPC's ModelInfer/ModelStreamInfer):
// a decoded request checked against the model's contract and turned into one service request per
// sample, each with the request's deadline (parameters.timeout, else --request-timeout), at most
// `limit`. Throws field_error naming the input or output.
// A sample of no new tokens (max_tokens 0: OPT's output_length 0) is left out of `samples`: the
// service is never asked for it, its answer is its prompt alone (an empty continuation).
struct InferPlan {
  ModelContract contract;
  std::vector<TextRequest> samples;  // the samples that generate, in the request's order
  std::vector<size_t> sample_of;     // samples[i] is the request's sample sample_of[i]
  std::vector<std::string> prompts;  // every sample's prompt, in the request's order
};
InferPlan kserve_plan_infer(const ServerContext& context, const ModelInfo& model, const InferRequest& request,
                            Clock::time_point limit);
// Plans, runs every sample to its end and returns the output tensors (the requested ones, all by
// default) with the request's number of samples. Stamps timing's submitted, first_event and
// finished; the caller stamps received and encoded and counts the success (Metrics). Throws what
// Generation throws (ClientGone, Error). `submit_on`: as Generation::submit.
struct InferResult {
  std::vector<EncodedOutput> outputs;
  int64_t num_samples = 0;
};
Task<InferResult> kserve_run_infer(ServerContext& context, Exchange& exchange, const ModelInfo& model,
                                   const InferRequest& request, Clock::time_point limit, RequestTiming& timing,
                                   Generation::SubmitOn submit_on = Generation::SubmitOn::pool);
Task<void> kserve_generate(ServerContext& context, Exchange& exchange, RouteParams params, bool stream);

}  // namespace rankserve::net
