// KServe v2 gRPC messages <-> the transport-neutral tensors of net/tensor.h: a ModelInferRequest
// becomes the InferRequest that the HTTP decoder produces (same checks, same messages), and output
// tensors become ModelInferResponse outputs. Used by grpc_server.cpp; any thread.
#pragma once

#include <string_view>
#include <vector>

#include "net/grpc/grpc_service.pb.h"
#include "net/tensor.h"

namespace rankserve::net {

// Decodes and validates `message`: datatypes, shapes against element counts, typed `contents` or
// `raw_input_contents` (one entry per input, not both), and the request parameters the HTTP body
// carries in `parameters` (timeout, seed, temperature, top_p). Throws field_error naming the field.
InferRequest decode_grpc_request(const inference::ModelInferRequest& message);

// Whether the response carries raw_output_contents (as Triton answers, and what tritonclient reads)
// rather than typed contents: raw unless the request sent typed contents only, or the request
// parameter binary_data_output says otherwise.
bool wants_raw_outputs(const inference::ModelInferRequest& message);

// Appends `outputs` to `response` (typed contents, or one raw_output_contents entry each).
void encode_grpc_outputs(const std::vector<EncodedOutput>& outputs, bool raw, inference::ModelInferResponse& response);

}  // namespace rankserve::net
