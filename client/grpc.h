// rankserve-client over KServe v2 gRPC (--url grpc://host:port, Triton's port 8001): the requests the
// client makes over HTTP, carried by the GRPCInferenceService RPCs. Answers come back in the HTTP
// form (status code and JSON body), so the client's logic is one for both transports. Any thread;
// one channel per call.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "net/grpc/grpc_service.pb.h"
#include "net/http_client.h"

namespace rankserve::client {

inline constexpr std::string_view kGrpcScheme = "grpc://";

// A --url that names a gRPC server.
bool is_grpc_url(std::string_view url);

// `request` as the KServe v2 HTTP client would send it (GET /v2/health/ready, GET /v2/models/<m>,
// POST /v2/models/<m>/infer with a JSON body, GET /v1/models), made as the matching RPC (ServerReady,
// ModelMetadata, ModelInfer; a gRPC server has no model list, so /v1/models lists those of the
// examples' names, GPT and OPT, that ModelReady says are ready). gRPC statuses map to the HTTP codes
// rankserve answers (INVALID_ARGUMENT 400, UNAUTHENTICATED 401, NOT_FOUND 404, RESOURCE_EXHAUSTED 429,
// UNAVAILABLE 503, DEADLINE_EXCEEDED 504) with body {"error": message}. Throws Error(runtime) when
// the server cannot be reached by the deadline. `authorization` metadata from the request's
// Authorization header.
net::HttpResponse grpc_exchange(const std::string& target_host_port, const net::HttpRequest& request,
                                std::chrono::milliseconds timeout);

// A KServe v2 JSON infer body (what POST /v2/models/<model>/infer carries) as a ModelInferRequest with
// typed contents. Throws Error(usage) for a datatype it does not carry.
inference::ModelInferRequest grpc_infer_request(const std::string& model, const std::string& json_body);

// ModelStreamInfer of one infer body (the JSON of POST /v2/models/<model>/infer): each response's text
// output goes to `on_text` as it arrives, until the final one (triton_final_response). Throws
// Error(runtime) with the server's message when the stream or the request fails.
void grpc_stream(const std::string& target_host_port, const net::HttpRequest& infer_request, std::chrono::milliseconds timeout,
                 const std::function<void(std::string_view)>& on_text);

}  // namespace rankserve::client
