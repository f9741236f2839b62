// grpc tier, in process: the gRPC front end over the http tier's scripted FakeService, driven by a
// grpc++ client with the stubs generated from net/grpc/grpc_service.proto. Covers what a live model
// cannot show without timing: a deadline or a cancelled stream cancels a request that never ends,
// and the service's refusals map to gRPC codes.
#include "net/grpc/grpc_server.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>

#include <cstring>

#include "net/grpc/grpc_service.grpc.pb.h"
#include "tests/http/test_client.h"

using namespace rankserve;
using namespace rankserve::testing;
namespace pb = inference;

namespace {

struct GrpcTestServer {
  explicit GrpcTestServer(ModelInfo model = gpt_model_info(), net::ServerOptions options = TestServer::default_options())
      : http(std::move(model), options),
        grpc(net::GrpcOptions{"127.0.0.1", 0}, http.server),
        channel(grpc::CreateChannel(fmt::format("127.0.0.1:{}", grpc.port()), grpc::InsecureChannelCredentials())),
        stub(pb::GRPCInferenceService::NewStub(channel)) {}

  TestServer http;
  net::GrpcServer grpc;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::GRPCInferenceService::Stub> stub;
};

void deadline_in(grpc::ClientContext& context, std::chrono::milliseconds ms) {
  context.set_deadline(std::chrono::system_clock::now() + ms);
}

std::string raw_bytes_element(const std::string& s) {
  const auto n = static_cast<uint32_t>(s.size());
  std::string out(4, '\0');
  std::memcpy(out.data(), &n, 4);
  return out + s;
}

// `prompt` and max_length `new_tokens` for the GPT contract, raw or typed.
pb::ModelInferRequest gpt_request(const std::string& prompt, int new_tokens, bool raw) {
  pb::ModelInferRequest r;
  r.set_model_name("GPT");
  r.set_id("id-1");
  auto* p = r.add_inputs();
  p->set_name("prompts");
  p->set_datatype("BYTES");
  p->add_shape(1);
  p->add_shape(1);
  auto* m = r.add_inputs();
  m->set_name("max_length");
  m->set_datatype("INT32");
  m->add_shape(1);
  m->add_shape(1);
  if (raw) {
    r.add_raw_input_contents(raw_bytes_element(prompt));
    std::string n(4, '\0');
    std::memcpy(n.data(), &new_tokens, 4);
    r.add_raw_input_contents(n);
  } else {
    p->mutable_contents()->add_bytes_contents(prompt);
    m->mutable_contents()->add_int_contents(new_tokens);
  }
  return r;
}

std::string first_string(const pb::ModelInferResponse& r, const std::string& name) {
  for (int i = 0; i < r.outputs_size(); ++i) {
    if (r.outputs(i).name() != name) continue;
    if (r.raw_output_contents_size() > 0) return r.raw_output_contents(i).substr(4);  // one element
    return r.outputs(i).contents().bytes_contents(0);
  }
  FAIL("no output " << name);
  return "";
}

}  // namespace

TEST_CASE("gRPC ModelInfer answers raw for raw inputs and typed for typed ones, with the request id") {
  GrpcTestServer t;
  for (bool raw : {true, false}) {
    grpc::ClientContext context;
    deadline_in(context, 10s);
    pb::ModelInferResponse response;
    const grpc::Status status = t.stub->ModelInfer(&context, gpt_request("a", 3, raw), &response);
    REQUIRE_MESSAGE(status.ok(), status.error_message());
    CHECK(response.id() == "id-1");
    CHECK(response.model_name() == "GPT");
    CHECK((response.raw_output_contents_size() > 0) == raw);
    CHECK(first_string(response, "sentences") == "a" + FakeService::continuation(3));
  }
}

TEST_CASE("gRPC health follows the service: not ready while loading") {
  GrpcTestServer t;
  pb::ServerReadyResponse ready;
  {
    grpc::ClientContext context;
    REQUIRE(t.stub->ServerReady(&context, {}, &ready).ok());
    CHECK(ready.ready());
  }
  FakeScript s;
  s.ready = false;
  t.http.service.set_script(s);
  grpc::ClientContext context;
  REQUIRE(t.stub->ServerReady(&context, {}, &ready).ok());
  CHECK_FALSE(ready.ready());
  pb::ModelReadyRequest request;
  request.set_name("GPT");
  pb::ModelReadyResponse model_ready;
  grpc::ClientContext model_context;
  REQUIRE(t.stub->ModelReady(&model_context, request, &model_ready).ok());
  CHECK_FALSE(model_ready.ready());
}

TEST_CASE("a gRPC deadline cancels a request that never finishes") {
  GrpcTestServer t;
  FakeScript s;
  s.hang = true;
  // The service would fail the request at the same deadline (the call's bounds the request's), and
  // whichever came first would decide the test; here only the call's cancellation can end it.
  s.ignore_deadlines = true;
  t.http.service.set_script(s);
  grpc::ClientContext context;
  // Long enough for the request to reach the service on a loaded machine (at 300 ms it once passed
  // before the submit, leaving nothing to cancel); the request itself never finishes.
  deadline_in(context, 2s);
  pb::ModelInferResponse response;
  const grpc::Status status = t.stub->ModelInfer(&context, gpt_request("a", 5, true), &response);
  CHECK(status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK(t.http.service.wait_for_submits(1, 10s));
  CHECK(t.http.service.wait_for_cancels(1, 10s));
}

TEST_CASE("a cancelled gRPC stream cancels its request") {
  GrpcTestServer t;
  FakeScript s;
  s.hang = true;
  t.http.service.set_script(s);
  grpc::ClientContext context;
  auto stream = t.stub->ModelStreamInfer(&context);
  REQUIRE(stream->Write(gpt_request("a", 5, true)));
  REQUIRE(t.http.service.wait_for_submits(1, 10s));
  context.TryCancel();
  CHECK(t.http.service.wait_for_cancels(1, 10s));
  CHECK(stream->Finish().error_code() == grpc::StatusCode::CANCELLED);
}

TEST_CASE("gRPC ModelStreamInfer sends one response per token, the last with triton_final_response") {
  GrpcTestServer t;
  grpc::ClientContext context;
  deadline_in(context, 10s);
  auto stream = t.stub->ModelStreamInfer(&context);
  REQUIRE(stream->Write(gpt_request("a", 3, true)));
  stream->WritesDone();
  std::string text;
  std::vector<bool> finals;
  pb::ModelStreamInferResponse response;
  while (stream->Read(&response)) {
    REQUIRE_MESSAGE(response.error_message().empty(), response.error_message());
    text += first_string(response.infer_response(), "sentences");
    finals.push_back(response.infer_response().parameters().at("triton_final_response").bool_param());
  }
  REQUIRE(stream->Finish().ok());
  CHECK(text == FakeService::continuation(3));
  REQUIRE(finals.size() >= 3);
  CHECK(finals.back());
  CHECK(std::count(finals.begin(), finals.end(), true) == 1);
}

TEST_CASE("gRPC ModelStreamInfer answers an OPT output_length of 0 at once, without running it") {
  GrpcTestServer t(opt_model_info());
  pb::ModelInferRequest r;
  r.set_model_name("OPT");
  auto* input = r.add_inputs();
  input->set_name("input");
  input->set_datatype("BYTES");
  input->add_shape(2);
  input->add_shape(1);
  input->mutable_contents()->add_bytes_contents("x y");
  input->mutable_contents()->add_bytes_contents("z");
  auto* length = r.add_inputs();
  length->set_name("output_length");
  length->set_datatype("INT64");
  length->add_shape(2);
  length->add_shape(1);
  length->mutable_contents()->add_int64_contents(0);
  length->mutable_contents()->add_int64_contents(2);
  grpc::ClientContext context;
  deadline_in(context, 10s);
  auto stream = t.stub->ModelStreamInfer(&context);
  REQUIRE(stream->Write(r));
  stream->WritesDone();
  std::vector<int64_t> samples;
  std::vector<bool> finals;
  std::string text;
  pb::ModelStreamInferResponse response;
  while (stream->Read(&response)) {
    REQUIRE_MESSAGE(response.error_message().empty(), response.error_message());
    const auto& parameters = response.infer_response().parameters();
    samples.push_back(parameters.at("sample_index").int64_param());
    finals.push_back(parameters.at("triton_final_response").bool_param());
    if (samples.back() == 0) CHECK(first_string(response.infer_response(), "output").empty());
    else text += first_string(response.infer_response(), "output");
  }
  REQUIRE(stream->Finish().ok());
  REQUIRE(samples.size() >= 2);
  CHECK(samples.front() == 0);  // the sample of no new tokens, first and alone
  CHECK(std::count(samples.begin(), samples.end(), 0) == 1);
  CHECK(text == FakeService::continuation(2));
  CHECK(finals.back());
  CHECK(std::count(finals.begin(), finals.end(), true) == 1);
  const std::vector<TextRequest> submitted = t.http.service.submitted();
  REQUIRE(submitted.size() == 1);
  CHECK(submitted[0].prompt == "z");
}

TEST_CASE("gRPC ModelStatistics answers the HTTP statistics, which count gRPC inferences") {
  GrpcTestServer t;
  {
    grpc::ClientContext context;
    deadline_in(context, 10s);
    pb::ModelInferResponse response;
    REQUIRE(t.stub->ModelInfer(&context, gpt_request("a", 3, true), &response).ok());
  }
  grpc::ClientContext context;
  deadline_in(context, 10s);
  pb::ModelStatisticsRequest request;
  request.set_name("GPT");
  pb::ModelStatisticsResponse response;
  REQUIRE(t.stub->ModelStatistics(&context, request, &response).ok());
  REQUIRE(response.model_stats_size() == 1);
  const pb::ModelStatistics& m = response.model_stats(0);
  CHECK(m.name() == "GPT");
  CHECK(m.version() == "1");
  CHECK(m.inference_count() == 1);
  CHECK(m.inference_stats().success().count() == 1);
  CHECK(m.inference_stats().success().ns() > 0);
  const Reply http = t.http.get("/v2/models/GPT/stats");
  CHECK(http.body.find("\"inference_count\":1,") != std::string::npos);
  grpc::ClientContext unknown_context;
  deadline_in(unknown_context, 10s);
  request.set_name("nope");
  CHECK(t.stub->ModelStatistics(&unknown_context, request, &response).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("the service's refusals map to gRPC codes with the HTTP messages") {
  GrpcTestServer t;
  auto infer_status = [&](const pb::ModelInferRequest& request, const std::string& key = "") {
    grpc::ClientContext context;
    deadline_in(context, 10s);
    if (!key.empty()) context.AddMetadata("authorization", "Bearer " + key);
    pb::ModelInferResponse response;
    return t.stub->ModelInfer(&context, request, &response);
  };
  FakeScript s;
  s.overloaded = true;
  t.http.service.set_script(s);
  CHECK(infer_status(gpt_request("a", 2, true)).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  s.overloaded = false;
  s.unavailable = true;
  t.http.service.set_script(s);
  CHECK(infer_status(gpt_request("a", 2, true)).error_code() == grpc::StatusCode::UNAVAILABLE);
  t.http.service.set_script({});
  pb::ModelInferRequest bad = gpt_request("a", 0, false);
  const grpc::Status status = infer_status(bad);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message() == "request: input 'max_length': is 0; expected new tokens >= 1");
  const Reply http = t.http.post("/v2/models/GPT/infer", R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],
      "data":["a"]},{"name":"max_length","datatype":"INT32","shape":[1,1],"data":[0]}]})");
  CHECK(http.body.find(status.error_message()) != std::string::npos);
}

TEST_CASE("--api-key applies to gRPC ModelInfer and ModelStreamInfer through the authorization metadata") {
  net::ServerOptions options = TestServer::default_options();
  options.api_key = "k";
  GrpcTestServer t(gpt_model_info(), options);
  for (const std::string key : {"", "wrong", "k"}) {
    grpc::ClientContext context;
    deadline_in(context, 10s);
    if (!key.empty()) context.AddMetadata("authorization", "Bearer " + key);
    pb::ModelInferResponse response;
    const grpc::Status status = t.stub->ModelInfer(&context, gpt_request("a", 2, true), &response);
    CHECK_MESSAGE(status.error_code() == (key == "k" ? grpc::StatusCode::OK : grpc::StatusCode::UNAUTHENTICATED), key);
  }
  grpc::ClientContext context;
  deadline_in(context, 10s);
  auto stream = t.stub->ModelStreamInfer(&context);
  stream->Write(gpt_request("a", 2, true));
  stream->WritesDone();
  pb::ModelStreamInferResponse response;
  while (stream->Read(&response)) {
  }
  CHECK(stream->Finish().error_code() == grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ready_context;
  pb::ServerReadyResponse ready;
  CHECK(t.stub->ServerReady(&ready_context, {}, &ready).ok());  // health needs no key
}

TEST_CASE("a gRPC port in use is refused, naming --grpc-port") {
  GrpcTestServer t;
  try {
    net::GrpcServer second(net::GrpcOptions{"127.0.0.1", t.grpc.port()}, t.http.server);
    FAIL("a second server bound the same port");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(fmt::format("127.0.0.1:{} (--grpc-port)", t.grpc.port())) != std::string::npos);
  }
}
