#include "net/grpc/grpc_codec.h"

#include <fmt/format.h>

#include <optional>
#include <string>

#include "net/http_types.h"

namespace rankserve::net {

namespace {

using inference::InferParameter;
using inference::InferTensorContents;
using ParameterMap = google::protobuf::Map<std::string, InferParameter>;

const InferParameter* find_parameter(const ParameterMap& map, const std::string& key) {
  const auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

std::string_view kind_of(const InferParameter& p) {
  switch (p.parameter_choice_case()) {
    case InferParameter::kBoolParam: return "a bool_param";
    case InferParameter::kInt64Param: return "an int64_param";
    case InferParameter::kStringParam: return "a string_param";
    case InferParameter::kDoubleParam: return "a double_param";
    case InferParameter::kUint64Param: return "a uint64_param";
    default: return "unset";
  }
}

std::optional<double> read_number(const ParameterMap& map, const std::string& key, const std::string& field) {
  const InferParameter* p = find_parameter(map, key);
  if (p == nullptr) return std::nullopt;
  switch (p->parameter_choice_case()) {
    case InferParameter::kInt64Param: return static_cast<double>(p->int64_param());
    case InferParameter::kUint64Param: return static_cast<double>(p->uint64_param());
    case InferParameter::kDoubleParam: return p->double_param();
    default: throw field_error(field, fmt::format("is {}; expected a number (int64_param or double_param)", kind_of(*p)));
  }
}

std::optional<int64_t> read_int(const ParameterMap& map, const std::string& key, const std::string& field) {
  const InferParameter* p = find_parameter(map, key);
  if (p == nullptr) return std::nullopt;
  if (p->parameter_choice_case() == InferParameter::kInt64Param) return p->int64_param();
  if (p->parameter_choice_case() == InferParameter::kUint64Param) return static_cast<int64_t>(p->uint64_param());
  throw field_error(field, fmt::format("is {}; expected an integer (int64_param)", kind_of(*p)));
}

std::optional<bool> read_bool(const ParameterMap& map, const std::string& key, const std::string& field) {
  const InferParameter* p = find_parameter(map, key);
  if (p == nullptr) return std::nullopt;
  if (p->parameter_choice_case() == InferParameter::kBoolParam) return p->bool_param();
  throw field_error(field, fmt::format("is {}; expected a bool_param", kind_of(*p)));
}

// The typed contents field of the tensor's datatype; the others are ignored (the count check
// names a tensor whose elements went to the wrong field).
void append_contents(Tensor& t, const InferTensorContents& c) {
  switch (t.datatype) {
    case DataType::bytes: t.strings.assign(c.bytes_contents().begin(), c.bytes_contents().end()); return;
    case DataType::boolean:
      for (bool v : c.bool_contents()) t.numbers.push_back(v ? 1 : 0);
      return;
    case DataType::int32:
      for (int32_t v : c.int_contents()) t.numbers.push_back(v);
      return;
    case DataType::int64:
      for (int64_t v : c.int64_contents()) t.numbers.push_back(static_cast<double>(v));
      return;
    case DataType::fp32:
      for (float v : c.fp32_contents()) t.numbers.push_back(v);
      return;
  }
}

bool has_contents(const InferTensorContents& c) {
  return c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() + c.uint_contents_size() +
             c.uint64_contents_size() + c.fp32_contents_size() + c.fp64_contents_size() + c.bytes_contents_size() >
         0;
}

}  // namespace

InferRequest decode_grpc_request(const inference::ModelInferRequest& message) {
  InferRequest request;
  request.id = message.id();
  const ParameterMap& parameters = message.parameters();
  request.binary_data_output = read_bool(parameters, "binary_data_output", "parameters.binary_data_output").value_or(false);
  if (auto timeout = read_number(parameters, "timeout", "parameters.timeout")) {
    if (*timeout < 0) throw field_error("parameters.timeout", fmt::format("is {}; expected microseconds >= 0", *timeout));
    if (*timeout > 0) request.timeout_us = *timeout;  // 0: no timeout given, as in Triton
  }
  request.seed = read_int(parameters, "seed", "parameters.seed");
  request.temperature = read_number(parameters, "temperature", "parameters.temperature");
  request.top_p = read_number(parameters, "top_p", "parameters.top_p");

  const size_t message_bytes = message.ByteSizeLong();
  const bool raw = message.raw_input_contents_size() > 0;
  if (raw && message.raw_input_contents_size() != message.inputs_size()) {
    throw field_error("raw_input_contents", fmt::format("has {} entries; expected one per input ({})",
                                                        message.raw_input_contents_size(), message.inputs_size()));
  }
  for (int i = 0; i < message.inputs_size(); ++i) {
    const auto& in = message.inputs(i);
    if (in.name().empty()) throw field_error(fmt::format("inputs[{}].name", i), "is missing");
    Tensor t;
    t.name = in.name();
    const std::string field = fmt::format("input '{}'", t.name);
    if (request.find_input(t.name) != nullptr) throw field_error(field, "is given twice");
    const auto type = parse_datatype(in.datatype());
    if (!type) {
      throw field_error(field, fmt::format("has datatype '{}'; expected BYTES, BOOL, INT32, INT64 or FP32", in.datatype()));
    }
    t.datatype = *type;
    t.shape.assign(in.shape().begin(), in.shape().end());
    check_tensor_shape(t.shape, message_bytes, field);
    if (raw) {
      if (in.has_contents() && has_contents(in.contents())) throw field_error(field, "has both contents and raw_input_contents");
      decode_tensor_bytes(t, message.raw_input_contents(i), field);
    } else {
      append_contents(t, in.contents());
      check_element_count(t, field);
    }
    request.inputs.push_back(std::move(t));
  }
  for (int i = 0; i < message.outputs_size(); ++i) {
    const auto& out = message.outputs(i);
    if (out.name().empty()) throw field_error(fmt::format("outputs[{}].name", i), "is missing");
    request.outputs.push_back({out.name(), false});  // the form is the whole response's (wants_raw_outputs)
  }
  return request;
}

bool wants_raw_outputs(const inference::ModelInferRequest& message) {
  const auto it = message.parameters().find("binary_data_output");
  if (it != message.parameters().end() && it->second.parameter_choice_case() == InferParameter::kBoolParam) {
    return it->second.bool_param();
  }
  return message.raw_input_contents_size() > 0 || message.inputs_size() == 0;
}

void encode_grpc_outputs(const std::vector<EncodedOutput>& outputs, bool raw, inference::ModelInferResponse& response) {
  for (const EncodedOutput& o : outputs) {
    const Tensor& t = o.tensor;
    auto* out = response.add_outputs();
    out->set_name(t.name);
    out->set_datatype(std::string(to_string(t.datatype)));
    for (int64_t d : t.shape) out->add_shape(d);
    if (raw) {
      response.add_raw_output_contents(encode_tensor_bytes(t));
      continue;
    }
    InferTensorContents* c = out->mutable_contents();
    switch (t.datatype) {
      case DataType::bytes:
        for (const std::string& s : t.strings) c->add_bytes_contents(s);
        break;
      case DataType::boolean:
        for (double v : t.numbers) c->add_bool_contents(v != 0);
        break;
      case DataType::int32:
        for (double v : t.numbers) c->add_int_contents(static_cast<int32_t>(v));
        break;
      case DataType::int64:
        for (double v : t.numbers) c->add_int64_contents(static_cast<int64_t>(v));
        break;
      case DataType::fp32:
        for (double v : t.numbers) c->add_fp32_contents(static_cast<float>(v));
        break;
    }
  }
}

}  // namespace rankserve::net
