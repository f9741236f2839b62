#include "net/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <boost/json.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "net/http_types.h"
#include "net/json_fields.h"

namespace rankserve::net {

namespace json = boost::json;

// The binary extension is little-endian; rankserve builds only for little-endian hosts.
static_assert(std::endian::native == std::endian::little, "the binary tensor codec assumes a little-endian host");

std::string_view to_string(DataType type) noexcept {
  switch (type) {
    case DataType::bytes: return "BYTES";
    case DataType::boolean: return "BOOL";
    case DataType::int32: return "INT32";
    case DataType::int64: return "INT64";
    case DataType::fp32: return "FP32";
  }
  return "BYTES";
}

std::string_view config_type(DataType type) noexcept {
  switch (type) {
    case DataType::bytes: return "TYPE_STRING";
    case DataType::boolean: return "TYPE_BOOL";
    case DataType::int32: return "TYPE_INT32";
    case DataType::int64: return "TYPE_INT64";
    case DataType::fp32: return "TYPE_FP32";
  }
  return "TYPE_STRING";
}

std::optional<DataType> parse_datatype(std::string_view text) noexcept {
  for (DataType t : {DataType::bytes, DataType::boolean, DataType::int32, DataType::int64, DataType::fp32}) {
    if (text == to_string(t)) return t;
  }
  return std::nullopt;
}

int64_t Tensor::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const Tensor* InferRequest::find_input(std::string_view name) const {
  for (const Tensor& t : inputs) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

size_t element_size(DataType type) {
  switch (type) {
    case DataType::boolean: return 1;
    case DataType::int32:
    case DataType::fp32: return 4;
    case DataType::int64: return 8;
    case DataType::bytes: return 0;
  }
  return 0;
}

}  // namespace

// Every element takes at least one byte of JSON text or binary data: the count is checked against
// the body before any size arithmetic uses it (Tensor::num_elements, byte counts), each product checked.
void check_tensor_shape(const std::vector<int64_t>& shape, size_t body_bytes, const std::string& field) {
  for (int64_t dim : shape) {
    if (dim < 0) throw field_error(field, fmt::format("has shape dimension {}; expected sizes >= 0", dim));
  }
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n) || static_cast<uint64_t>(n) > body_bytes) {
      throw field_error(field, fmt::format("has shape [{}], more elements than a body of {} bytes can carry",
                                           fmt::join(shape, ","), body_bytes));
    }
  }
}

void check_element_count(const Tensor& t, const std::string& field) {
  const size_t count = t.datatype == DataType::bytes ? t.strings.size() : t.numbers.size();
  if (static_cast<int64_t>(count) != t.num_elements()) {
    throw field_error(field,
                      fmt::format("has {} data elements; shape [{}] needs {}", count, fmt::join(t.shape, ","), t.num_elements()));
  }
}

namespace {

// Appends the elements of `data` (flat or nested arrays, as KServe allows) to the tensor.
void append_json_elements(Tensor& t, const json::value& data, const std::string& field) {
  if (data.is_array()) {
    for (const json::value& item : data.as_array()) append_json_elements(t, item, field);
    return;
  }
  switch (t.datatype) {
    case DataType::bytes:
      if (!data.is_string()) throw field_error(field, "has a non-string element; BYTES data must be JSON strings");
      t.strings.emplace_back(data.as_string());
      return;
    case DataType::boolean:
      if (!data.is_bool()) throw field_error(field, "has a non-boolean element; BOOL data must be true or false");
      t.numbers.push_back(data.as_bool() ? 1 : 0);
      return;
    case DataType::int32:
    case DataType::int64: {
      const int64_t v = as_int(data, field);
      if (t.datatype == DataType::int32 && (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())) {
        throw field_error(field, fmt::format("has {}, outside INT32", v));
      }
      t.numbers.push_back(static_cast<double>(v));
      return;
    }
    case DataType::fp32: t.numbers.push_back(as_number(data, field)); return;
  }
}

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

void decode_tensor_bytes(Tensor& t, std::string_view raw, const std::string& field) {
  const int64_t n = t.num_elements();
  if (t.datatype == DataType::bytes) {
    size_t pos = 0;
    while (pos < raw.size()) {
      if (raw.size() - pos < 4) throw field_error(field, "binary BYTES data ends inside a 4-byte length prefix");
      const uint32_t len = load<uint32_t>(raw.data() + pos);
      pos += 4;
      if (raw.size() - pos < len)
        throw field_error(field, fmt::format("binary BYTES element of {} bytes runs past the end of its data", len));
      t.strings.emplace_back(raw.substr(pos, len));
      pos += len;
    }
    if (static_cast<int64_t>(t.strings.size()) != n) {
      throw field_error(field, fmt::format("binary data holds {} BYTES elements; shape {} needs {}", t.strings.size(),
                                           fmt::join(t.shape, "x"), n));
    }
    return;
  }
  const size_t size = element_size(t.datatype);
  if (raw.size() != static_cast<size_t>(n) * size) {
    throw field_error(field, fmt::format("binary_data_size is {} bytes; shape [{}] of {} needs {}", raw.size(),
                                         fmt::join(t.shape, ","), to_string(t.datatype), static_cast<size_t>(n) * size));
  }
  for (int64_t i = 0; i < n; ++i) {
    const char* p = raw.data() + static_cast<size_t>(i) * size;
    switch (t.datatype) {
      case DataType::boolean: t.numbers.push_back(*p != 0 ? 1 : 0); break;
      case DataType::int32: t.numbers.push_back(load<int32_t>(p)); break;
      case DataType::int64: t.numbers.push_back(static_cast<double>(load<int64_t>(p))); break;
      case DataType::fp32: t.numbers.push_back(load<float>(p)); break;
      case DataType::bytes: break;
    }
  }
}

namespace {

bool read_binary_flag(const json::object& object, std::string_view field) {
  const json::object* parameters = read_object(object, "parameters", fmt::format("{}.parameters", field));
  if (parameters == nullptr) return false;
  return read_bool(*parameters, "binary_data", fmt::format("{}.parameters.binary_data", field)).value_or(false);
}

}  // namespace

InferRequest decode_infer_request(std::string_view body, std::optional<size_t> json_size) {
  if (json_size && *json_size > body.size()) {
    throw field_error("Inference-Header-Content-Length",
                      fmt::format("is {} but the body has only {} bytes", *json_size, body.size()));
  }
  const std::string_view header = json_size ? body.substr(0, *json_size) : body;
  std::string_view binary = json_size ? body.substr(*json_size) : std::string_view();
  const json::object root = parse_json_object(header);

  InferRequest request;
  if (auto id = read_string(root, "id")) request.id = *id;
  if (const json::object* parameters = read_object(root, "parameters")) {
    request.binary_data_output = read_bool(*parameters, "binary_data_output", "parameters.binary_data_output").value_or(false);
    // A number, not only an integer: a huge value (1e300) asks for no deadline rather than a 400.
    if (auto timeout = read_number(*parameters, "timeout", "parameters.timeout")) {
      if (*timeout < 0) throw field_error("parameters.timeout", fmt::format("is {}; expected microseconds >= 0", *timeout));
      if (*timeout > 0) request.timeout_us = *timeout;  // 0: no timeout given, as in Triton
    }
    request.seed = read_int(*parameters, "seed", "parameters.seed");
    request.temperature = read_number(*parameters, "temperature", "parameters.temperature");
    request.top_p = read_number(*parameters, "top_p", "parameters.top_p");
  }
  const json::value* inputs = find_field(root, "inputs");
  if (inputs == nullptr || !inputs->is_array())
    throw field_error("inputs", "is missing or not an array; expected the list of input tensors");
  size_t binary_pos = 0;
  for (size_t i = 0; i < inputs->as_array().size(); ++i) {
    const json::value& item = inputs->as_array()[i];
    const std::string where = fmt::format("inputs[{}]", i);
    if (!item.is_object()) throw field_error(where, "is not an object");
    const json::object& in = item.as_object();
    Tensor t;
    t.name = read_string(in, "name", where + ".name").value_or("");
    if (t.name.empty()) throw field_error(where + ".name", "is missing");
    const std::string field = fmt::format("input '{}'", t.name);
    if (request.find_input(t.name) != nullptr) throw field_error(field, "is given twice");
    const std::string datatype = read_string(in, "datatype", field + " datatype").value_or("");
    const auto type = parse_datatype(datatype);
    if (!type) throw field_error(field, fmt::format("has datatype '{}'; expected BYTES, BOOL, INT32, INT64 or FP32", datatype));
    t.datatype = *type;
    const json::value* shape = find_field(in, "shape");
    if (shape == nullptr || !shape->is_array()) throw field_error(field, "has no shape array");
    for (const json::value& d : shape->as_array()) {
      t.shape.push_back(as_int(d, field + " shape"));
    }
    check_tensor_shape(t.shape, body.size(), field);
    std::optional<int64_t> binary_size;
    if (const json::object* parameters = read_object(in, "parameters", field + " parameters")) {
      binary_size = read_int(*parameters, "binary_data_size", field + " parameters.binary_data_size");
    }
    const json::value* data = find_field(in, "data");
    if (binary_size) {
      if (data != nullptr) throw field_error(field, "has both data and binary_data_size");
      if (*binary_size < 0 || static_cast<size_t>(*binary_size) > binary.size() - binary_pos) {
        throw field_error(field, fmt::format("has binary_data_size {} but only {} binary bytes remain after the JSON header "
                                             "(is Inference-Header-Content-Length right?)",
                                             *binary_size, binary.size() - binary_pos));
      }
      decode_tensor_bytes(t, binary.substr(binary_pos, static_cast<size_t>(*binary_size)), field);
      binary_pos += static_cast<size_t>(*binary_size);
    } else {
      if (data == nullptr) throw field_error(field, "has no data (and no parameters.binary_data_size)");
      append_json_elements(t, *data, field);
      check_element_count(t, field);
    }
    request.inputs.push_back(std::move(t));
  }
  if (binary_pos != binary.size()) {
    throw field_error("Inference-Header-Content-Length",
                      fmt::format("leaves {} binary bytes after the JSON header but the inputs' binary_data_size add up to {}",
                                  binary.size(), binary_pos));
  }
  if (const json::value* outputs = find_field(root, "outputs")) {
    if (!outputs->is_array()) throw field_error("outputs", "is not an array");
    for (size_t i = 0; i < outputs->as_array().size(); ++i) {
      const json::value& item = outputs->as_array()[i];
      const std::string where = fmt::format("outputs[{}]", i);
      if (!item.is_object()) throw field_error(where, "is not an object");
      RequestedOutput out;
      out.name = read_string(item.as_object(), "name", where + ".name").value_or("");
      if (out.name.empty()) throw field_error(where + ".name", "is missing");
      const bool explicit_flag = read_object(item.as_object(), "parameters", where + ".parameters") != nullptr &&
                                 find_field(*read_object(item.as_object(), "parameters"), "binary_data") != nullptr;
      out.binary = explicit_flag ? read_binary_flag(item.as_object(), where) : request.binary_data_output;
      request.outputs.push_back(std::move(out));
    }
  }
  return request;
}

std::string encode_tensor_bytes(const Tensor& t) {
  std::string out;
  if (t.datatype == DataType::bytes) {
    for (const std::string& s : t.strings) {
      const uint32_t len = static_cast<uint32_t>(s.size());
      out.append(reinterpret_cast<const char*>(&len), 4);
      out += s;
    }
    return out;
  }
  for (double v : t.numbers) {
    switch (t.datatype) {
      case DataType::boolean: out.push_back(v != 0 ? 1 : 0); break;
      case DataType::int32: {
        const int32_t x = static_cast<int32_t>(v);
        out.append(reinterpret_cast<const char*>(&x), 4);
        break;
      }
      case DataType::int64: {
        const int64_t x = static_cast<int64_t>(v);
        out.append(reinterpret_cast<const char*>(&x), 8);
        break;
      }
      case DataType::fp32: {
        const float x = static_cast<float>(v);
        out.append(reinterpret_cast<const char*>(&x), 4);
        break;
      }
      case DataType::bytes: break;
    }
  }
  return out;
}

EncodedResponse encode_infer_response(std::string_view model_name, std::string_view id,
                                      const std::vector<EncodedOutput>& outputs) {
  json::object root;
  root["model_name"] = model_name;
  root["model_version"] = "1";
  if (!id.empty()) root["id"] = id;
  json::array list;
  std::string binary;
  bool any_binary = false;
  for (const EncodedOutput& o : outputs) {
    const Tensor& t = o.tensor;
    json::object out;
    out["name"] = t.name;
    out["datatype"] = to_string(t.datatype);
    json::array shape;
    for (int64_t d : t.shape) shape.emplace_back(d);
    out["shape"] = std::move(shape);
    if (o.binary) {
      const std::string bytes = encode_tensor_bytes(t);
      out["parameters"] = json::object{{"binary_data_size", bytes.size()}};
      binary += bytes;
      any_binary = true;
    } else {
      json::array data;
      if (t.datatype == DataType::bytes) {
        for (const std::string& s : t.strings) data.emplace_back(s);
      } else {
        for (double v : t.numbers) {
          if (t.datatype == DataType::boolean) data.emplace_back(v != 0);
          else if (t.datatype == DataType::fp32) data.emplace_back(static_cast<double>(static_cast<float>(v)));
          else data.emplace_back(static_cast<int64_t>(v));
        }
      }
      out["data"] = std::move(data);
    }
    list.push_back(std::move(out));
  }
  root["outputs"] = std::move(list);
  EncodedResponse response;
  response.body = serialize_json(root);
  if (any_binary) {
    response.json_size = response.body.size();
    response.body += binary;
  }
  return response;
}

}  // namespace rankserve::net
