#include "client/grpc.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <boost/json.hpp>

#include <cstring>
#include <optional>

#include "core/error.h"
#include "net/grpc/grpc_service.grpc.pb.h"

namespace rankserve::client {
namespace {

namespace json = boost::json;
namespace pb = inference;
using Stub = pb::GRPCInferenceService::Stub;

constexpr std::string_view kModels = "/v2/models/";

std::unique_ptr<Stub> stub_for(const std::string& target) {
  return pb::GRPCInferenceService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
}

void prepare(grpc::ClientContext& context, const net::HttpRequest& request, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  for (const auto& [name, value] : request.headers) {
    if (name == "Authorization") context.AddMetadata("authorization", value);
  }
}

int http_status_of(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    default: return 500;
  }
}

net::HttpResponse failed(const grpc::Status& status) {
  return {http_status_of(status.error_code()), json::serialize(json::object{{"error", status.error_message()}}), {}};
}

net::HttpResponse ok(const json::value& body) { return {200, json::serialize(body), {}}; }

// The JSON elements of a tensor, flattened (nested arrays are rows).
void flatten(const json::value& v, std::vector<const json::value*>& out) {
  if (v.is_array()) {
    for (const auto& e : v.as_array()) flatten(e, out);
  } else {
    out.push_back(&v);
  }
}

void set_parameter(pb::InferParameter& p, const json::value& v) {
  if (v.is_bool()) p.set_bool_param(v.as_bool());
  else if (v.is_int64()) p.set_int64_param(v.as_int64());
  else if (v.is_uint64()) p.set_uint64_param(v.as_uint64());
  else if (v.is_double()) p.set_double_param(v.as_double());
  else if (v.is_string()) p.set_string_param(std::string(v.as_string()));
}

// The strings of a BYTES output: typed contents, or its raw entry (each element 4-byte length-prefixed).
std::vector<std::string> strings_of(const pb::ModelInferResponse& r, int index) {
  const auto& t = r.outputs(index);
  std::vector<std::string> out(t.contents().bytes_contents().begin(), t.contents().bytes_contents().end());
  if (!out.empty() || index >= r.raw_output_contents_size()) return out;
  const std::string& raw = r.raw_output_contents(index);
  for (size_t at = 0; at + 4 <= raw.size();) {
    uint32_t length = 0;
    std::memcpy(&length, raw.data() + at, 4);
    at += 4;
    if (length > raw.size() - at) throw Error(ErrorCode::runtime, "client: a gRPC BYTES output is truncated");
    out.emplace_back(raw.substr(at, length));
    at += length;
  }
  return out;
}

// ModelInferResponse -> the KServe v2 JSON response (the outputs' names, types, shapes and data).
json::object infer_response_json(const pb::ModelInferResponse& r) {
  json::array outputs;
  for (int i = 0; i < r.outputs_size(); ++i) {
    const auto& t = r.outputs(i);
    json::array shape, data;
    for (int64_t d : t.shape()) shape.push_back(d);
    const auto& c = t.contents();
    if (t.datatype() == "BYTES") {
      for (auto& s : strings_of(r, i)) data.push_back(json::string(s));
    } else {
      for (bool b : c.bool_contents()) data.push_back(b);
      for (int32_t v : c.int_contents()) data.push_back(v);
      for (int64_t v : c.int64_contents()) data.push_back(v);
      for (float v : c.fp32_contents()) data.push_back(v);
      for (double v : c.fp64_contents()) data.push_back(v);
    }
    outputs.push_back(json::object{{"name", t.name()}, {"datatype", t.datatype()}, {"shape", shape}, {"data", data}});
  }
  return json::object{{"model_name", r.model_name()}, {"id", r.id()}, {"outputs", outputs}};
}

json::object metadata_json(const pb::ModelMetadataResponse& r) {
  auto tensors = [](const auto& list) {
    json::array out;
    for (const auto& t : list) {
      json::array shape;
      for (int64_t d : t.shape()) shape.push_back(d);
      out.push_back(json::object{{"name", t.name()}, {"datatype", t.datatype()}, {"shape", shape}});
    }
    return out;
  };
  json::array versions;
  for (const auto& v : r.versions()) versions.push_back(json::string(v));
  return json::object{{"name", r.name()},
                      {"versions", versions},
                      {"platform", r.platform()},
                      {"inputs", tensors(r.inputs())},
                      {"outputs", tensors(r.outputs())}};
}

}  // namespace

pb::ModelInferRequest grpc_infer_request(const std::string& model, const std::string& body) {
  const json::value parsed = json::parse(body);
  const json::object& o = parsed.as_object();
  pb::ModelInferRequest r;
  r.set_model_name(model);
  if (const auto* id = o.if_contains("id"); id && id->is_string()) r.set_id(std::string(id->as_string()));
  if (const auto* parameters = o.if_contains("parameters"); parameters && parameters->is_object()) {
    for (const auto& [name, value] : parameters->as_object()) set_parameter((*r.mutable_parameters())[std::string(name)], value);
  }
  for (const auto& input : o.at("inputs").as_array()) {
    const json::object& in = input.as_object();
    pb::ModelInferRequest::InferInputTensor& t = *r.add_inputs();
    t.set_name(std::string(in.at("name").as_string()));
    const std::string datatype(in.at("datatype").as_string());
    t.set_datatype(datatype);
    for (const auto& d : in.at("shape").as_array()) t.add_shape(d.to_number<int64_t>());
    std::vector<const json::value*> data;
    flatten(in.at("data"), data);
    pb::InferTensorContents& c = *t.mutable_contents();
    for (const json::value* v : data) {
      if (datatype == "BYTES") c.add_bytes_contents(std::string(v->as_string()));
      else if (datatype == "BOOL") c.add_bool_contents(v->as_bool());
      else if (datatype == "INT32") c.add_int_contents(v->to_number<int32_t>());
      else if (datatype == "INT64") c.add_int64_contents(v->to_number<int64_t>());
      else if (datatype == "FP32") c.add_fp32_contents(v->to_number<float>());
      else if (datatype == "FP64") c.add_fp64_contents(v->to_number<double>());
      else throw Error(ErrorCode::usage, fmt::format("client: gRPC requests do not carry {} inputs", datatype));
    }
  }
  return r;
}

bool is_grpc_url(std::string_view url) { return url.substr(0, kGrpcScheme.size()) == kGrpcScheme; }

net::HttpResponse grpc_exchange(const std::string& target, const net::HttpRequest& request, std::chrono::milliseconds timeout) {
  const auto stub = stub_for(target);
  grpc::ClientContext context;
  prepare(context, request, timeout);
  const std::string& path = request.target;
  if (path == "/v2/health/ready") {
    pb::ServerReadyResponse response;
    const grpc::Status status = stub->ServerReady(&context, pb::ServerReadyRequest(), &response);
    if (!status.ok()) return failed(status);
    return {response.ready() ? 200 : 503, json::serialize(json::object{{"ready", response.ready()}}), {}};
  }
  if (path == "/v1/models") {  // no list over gRPC: the examples' model names that are ready
    json::array data;
    for (const char* name : {"GPT", "OPT"}) {
      grpc::ClientContext ready_context;
      prepare(ready_context, request, timeout);
      pb::ModelReadyRequest ask;
      ask.set_name(name);
      pb::ModelReadyResponse response;
      if (stub->ModelReady(&ready_context, ask, &response).ok() && response.ready()) data.push_back(json::object{{"id", name}});
    }
    return ok(json::object{{"object", "list"}, {"data", data}});
  }
  if (path.rfind(kModels, 0) == 0) {
    const std::string rest = path.substr(kModels.size());
    const size_t slash = rest.find('/');
    const std::string model = rest.substr(0, slash);
    if (slash == std::string::npos && request.method == "GET") {
      pb::ModelMetadataRequest ask;
      ask.set_name(model);
      pb::ModelMetadataResponse response;
      const grpc::Status status = stub->ModelMetadata(&context, ask, &response);
      return status.ok() ? ok(metadata_json(response)) : failed(status);
    }
    if (rest.substr(slash + 1) == "infer" && request.method == "POST") {
      pb::ModelInferResponse response;
      const grpc::Status status = stub->ModelInfer(&context, grpc_infer_request(model, request.body), &response);
      return status.ok() ? ok(infer_response_json(response)) : failed(status);
    }
  }
  throw Error(ErrorCode::usage, fmt::format("client: {} {} has no gRPC form", request.method, path));
}

void grpc_stream(const std::string& target, const net::HttpRequest& infer_request, std::chrono::milliseconds timeout,
                 const std::function<void(std::string_view)>& on_text) {
  const std::string& path = infer_request.target;
  const std::string model = path.substr(kModels.size(), path.find('/', kModels.size()) - kModels.size());
  const auto stub = stub_for(target);
  grpc::ClientContext context;
  prepare(context, infer_request, timeout);
  auto stream = stub->ModelStreamInfer(&context);
  if (!stream->Write(grpc_infer_request(model, infer_request.body))) {
    const grpc::Status status = stream->Finish();
    throw Error(ErrorCode::runtime, fmt::format("client: ModelStreamInfer on {} failed: {}", target, status.error_message()));
  }
  pb::ModelStreamInferResponse piece;
  bool final = false;
  while (!final && stream->Read(&piece)) {
    if (!piece.error_message().empty()) {
      context.TryCancel();
      throw Error(ErrorCode::runtime, fmt::format("client: the server ended the stream: {}", piece.error_message()));
    }
    const pb::ModelInferResponse& r = piece.infer_response();
    if (r.outputs_size() > 0) {
      for (const std::string& text : strings_of(r, 0)) on_text(text);
    }
    const auto it = r.parameters().find("triton_final_response");
    final = it != r.parameters().end() && it->second.bool_param();
  }
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!final) {
    throw Error(ErrorCode::runtime, fmt::format("client: ModelStreamInfer on {} ended before the final response: {}", target,
                                                status.ok() ? "no error given" : status.error_message()));
  }
}

}  // namespace rankserve::client
