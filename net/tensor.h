// The KServe v2 tensor codec: inference request and response bodies in JSON and with Triton's
// binary tensor data extension (a JSON header of Inference-Header-Content-Length bytes, then raw
// tensor bytes; BYTES elements are 4-byte little-endian length-prefixed). Used by kserve.cpp.
// https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rankserve::net {

enum class DataType { bytes, boolean, int32, int64, fp32 };

std::string_view to_string(DataType type) noexcept;    // KServe's name: "BYTES", "BOOL", "INT32", ...
std::string_view config_type(DataType type) noexcept;  // Triton's model config name: "TYPE_STRING", ...
std::optional<DataType> parse_datatype(std::string_view text) noexcept;

struct Tensor {
  std::string name;
  DataType datatype = DataType::bytes;
  std::vector<int64_t> shape;
  std::vector<std::string> strings;  // BYTES elements, row-major
  std::vector<double> numbers;       // every other type, row-major; BOOL as 0 or 1

  int64_t num_elements() const;  // the product of shape (1 for a scalar shape [])
};

struct RequestedOutput {
  std::string name;
  bool binary = false;  // parameters.binary_data
};

struct InferRequest {
  std::string id;
  std::vector<Tensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty: every output of the model
  bool binary_data_output = false;       // parameters.binary_data_output: every output binary by default
  std::optional<double> timeout_us;      // parameters.timeout, microseconds as in Triton's schedule policy; > 0
  // rankserve's request parameters (Triton's parameters extension): a sampling seed for every
  // contract, and sampling for the OPT contract, which has no inputs for it.
  std::optional<int64_t> seed;        // parameters.seed
  std::optional<double> temperature;  // parameters.temperature
  std::optional<double> top_p;        // parameters.top_p

  const Tensor* find_input(std::string_view name) const;
};

// Decodes and validates a request body: datatypes, shapes against element counts, binary section
// sizes. `json_size` is the Inference-Header-Content-Length value when the header was sent. Throws
// field_error naming the input or field.
InferRequest decode_infer_request(std::string_view body, std::optional<size_t> json_size);

// The tensor checks of decode_infer_request, for the other transport (gRPC). Each throws field_error
// naming `field`. check_tensor_shape: every dimension >= 0, and no more elements than a body of
// `body_bytes` can carry. check_element_count: as many elements as the shape needs.
void check_tensor_shape(const std::vector<int64_t>& shape, size_t body_bytes, const std::string& field);
void check_element_count(const Tensor& tensor, const std::string& field);
// Appends the elements of `raw` (the binary layout: little-endian, BYTES 4-byte length-prefixed) to
// `tensor`, whose datatype and shape are set; the size must match the shape.
void decode_tensor_bytes(Tensor& tensor, std::string_view raw, const std::string& field);

struct EncodedOutput {
  Tensor tensor;
  bool binary = false;
};

struct EncodedResponse {
  std::string body;
  std::optional<size_t> json_size;  // set when any output is binary: the Inference-Header-Content-Length
};

EncodedResponse encode_infer_response(std::string_view model_name, std::string_view id,
                                      const std::vector<EncodedOutput>& outputs);

// Binary layout of one tensor's elements (little-endian; BYTES length-prefixed). For tests and clients.
std::string encode_tensor_bytes(const Tensor& tensor);

}  // namespace rankserve::net
