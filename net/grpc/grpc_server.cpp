#include "net/grpc/grpc_server.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <stdexcept>
#include <thread>
#include <unordered_set>

#include "core/log.h"
#include "net/errors.h"
#include "net/generation.h"
#include "net/grpc/grpc_codec.h"
#include "net/grpc/grpc_service.grpc.pb.h"
#include "net/http_server.h"
#include "net/kserve.h"
#include "net/kserve_models.h"
#include "net/kserve_stats.h"
#include "net/metrics.h"
#include "net/router.h"
#include "net/server_context.h"

namespace rankserve::net {

namespace asio = boost::asio;
namespace pb = inference;

namespace {

constexpr int kNumHandlerThreads = 4;  // run the handlers' coroutines (as many as HTTP's I/O threads); they never block
constexpr auto kStopGrace = std::chrono::seconds(5);  // calls still running this long after stop() are cancelled

grpc::StatusCode code_of(int http_status) {
  switch (http_status) {
    case 400: return grpc::StatusCode::INVALID_ARGUMENT;
    case 401: return grpc::StatusCode::UNAUTHENTICATED;
    case 404: return grpc::StatusCode::NOT_FOUND;
    case 413:
    case 429: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 501: return grpc::StatusCode::UNIMPLEMENTED;
    case 503: return grpc::StatusCode::UNAVAILABLE;
    case 504: return grpc::StatusCode::DEADLINE_EXCEEDED;
    default: return grpc::StatusCode::INTERNAL;
  }
}

FailureReason failure_reason(int http_status) {
  if (http_status == 429 || http_status == 503) return FailureReason::rejected;
  if (http_status >= 500) return FailureReason::backend;
  return FailureReason::other;
}

// The HTTP surface's JSON answer as the gRPC message with the same fields (proto3 JSON mapping):
// metadata, config and health have one definition, in kserve.cpp.
template <typename Message>
void from_json(const ServerResponse& response, Message& message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(response.body, &message, options);
  if (!status.ok()) {
    throw Error(ErrorCode::runtime, fmt::format("grpc: cannot convert the answer {} to {}: {}", response.body,
                                                message.GetTypeName(), status.ToString()));
  }
}

// The gRPC status of a handler's exception, with the message the HTTP surface answers.
grpc::Status status_of(const ServerContext& context, std::exception_ptr error, const std::string& what) {
  const ErrorReply reply = classify_error(error, context.options);
  log::warn("grpc: {} -> {}: {}", what, reply.status, reply.message);
  return {code_of(reply.status), reply.message};
}

// --api-key as the HTTP surface checks it, from the call's `authorization` metadata.
void check_key(const ServerContext& context, const grpc::CallbackServerContext& call) {
  if (context.options.api_key.empty()) return;
  ServerRequest request;
  const auto& metadata = call.client_metadata();
  if (const auto it = metadata.find("authorization"); it != metadata.end()) {
    request.headers.emplace_back("Authorization", std::string(it->second.data(), it->second.size()));
  }
  check_api_key(context, request);
}

// The call's deadline on the steady clock; max() when the client set none.
Clock::time_point deadline_of(const grpc::CallbackServerContext& call) {
  const auto deadline = call.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return Clock::time_point::max();
  return deadline_after(std::max(0.0, std::chrono::duration<double>(deadline - std::chrono::system_clock::now()).count()));
}

// What Generation needs of a call: its strand, and a wait that ends (ClientGone) when gRPC reports
// the call cancelled (the client cancelled, its deadline passed, or the server stops). Strand only.
class CallExchange final : public Exchange {
 public:
  explicit CallExchange(asio::any_io_executor strand) : strand_(std::move(strand)), cancelled_timer_(strand_) {}

  const ServerRequest& request() const override { return request_; }
  asio::any_io_executor executor() const override { return strand_; }
  Task<void> respond(ServerResponse) override { throw std::logic_error("grpc: a call answers through its reactor"); }
  Task<void> begin_stream(int, std::string, HeaderList) override { throw std::logic_error("grpc: no HTTP stream"); }
  Task<void> write_chunk(std::string) override { throw std::logic_error("grpc: no HTTP stream"); }
  Task<void> end_stream() override { throw std::logic_error("grpc: no HTTP stream"); }
  bool streaming() const override { return false; }
  bool responded() const override { return false; }
  int status() const override { return 0; }

  Task<void> watch_client(Task<void> operation) override {
    using namespace asio::experimental::awaitable_operators;
    if (cancelled_) throw ClientGone{};
    auto result = co_await (std::move(operation) || wait_cancelled());
    if (result.index() == 1) throw ClientGone{};
  }

  void cancel() {
    cancelled_ = true;
    cancelled_timer_.cancel();
  }

 private:
  Task<void> wait_cancelled() {
    if (cancelled_) co_return;  // checked in the turn the wait starts: cancel() runs on the strand too
    cancelled_timer_.expires_at(Clock::time_point::max());
    co_await cancelled_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  asio::any_io_executor strand_;
  asio::steady_timer cancelled_timer_;
  bool cancelled_ = false;
  ServerRequest request_;  // empty: handlers read the gRPC message instead
};

// One ModelInferRequest, validated and planned as the HTTP infer path plans it (kserve_plan_infer).
struct Prepared {
  const ModelInfo* model = nullptr;
  InferRequest request;
  InferPlan plan;
  bool raw = true;
};

Prepared prepare(const ServerContext& context, const pb::ModelInferRequest& message, Clock::time_point call_deadline) {
  Prepared p;
  p.model = &kserve_find_model(context, {message.model_name(), message.model_version()});
  p.request = decode_grpc_request(message);
  p.plan = kserve_plan_infer(context, *p.model, p.request, call_deadline);  // the call's deadline bounds the request's
  p.raw = wants_raw_outputs(message);
  return p;
}

void set_header(pb::ModelInferResponse& response, const ModelInfo& model, const pb::ModelInferRequest& message) {
  response.set_model_name(model.name);
  response.set_model_version("1");
  response.set_id(message.id());
}

Task<grpc::Status> model_infer(ServerContext& context, CallExchange& exchange, Clock::time_point call_deadline,
                               const pb::ModelInferRequest& message, pb::ModelInferResponse& response) {
  RequestTiming timing;
  timing.received = Clock::now();
  std::exception_ptr error;
  try {
    const ModelInfo& model = kserve_find_model(context, {message.model_name(), message.model_version()});
    const InferRequest request = decode_grpc_request(message);
    const InferResult result = co_await kserve_run_infer(context, exchange, model, request, call_deadline, timing,
                                                         Generation::SubmitOn::inline_when_small);
    set_header(response, model, message);
    encode_grpc_outputs(result.outputs, wants_raw_outputs(message), response);
    timing.encoded = Clock::now();
    context.metrics.count_inference_success(model.name, timing, result.num_samples);
    co_return grpc::Status::OK;
  } catch (const ClientGone&) {
    context.metrics.count_inference_failure(message.model_name(), FailureReason::canceled, timing.received);
    co_return grpc::Status(grpc::StatusCode::CANCELLED, "grpc: the call was cancelled (by the client or its deadline)");
  } catch (...) {
    error = std::current_exception();
  }
  const ErrorReply reply = classify_error(error, context.options);
  context.metrics.count_inference_failure(message.model_name(), failure_reason(reply.status), timing.received);
  co_return status_of(context, error, fmt::format("ModelInfer '{}'", message.model_name()));
}

// Runs model_infer on a strand of its own; gRPC's OnCancel cancels the generation.
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  InferReactor(ServerContext& context, asio::io_context& io, grpc::CallbackServerContext* call,
               const pb::ModelInferRequest* message, pb::ModelInferResponse* response)
      : exchange_(std::make_shared<CallExchange>(asio::make_strand(io))) {
    try {
      check_key(context, *call);
    } catch (...) {
      Finish(status_of(context, std::current_exception(), "ModelInfer"));
      return;
    }
    // The message and response live until OnDone, which comes only after Finish.
    asio::co_spawn(exchange_->executor(), model_infer(context, *exchange_, deadline_of(*call), *message, *response),
                   [this, keep = exchange_](std::exception_ptr e, grpc::Status status) {
                     Finish(e ? grpc::Status(grpc::StatusCode::INTERNAL, "grpc: internal error") : status);
                   });
  }
  void OnCancel() override {
    asio::post(exchange_->executor(), [exchange = exchange_] { exchange->cancel(); });
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<CallExchange> exchange_;
};

using StreamReactorBase = grpc::ServerBidiReactor<pb::ModelInferRequest, pb::ModelStreamInferResponse>;

// A ModelStreamInfer call's state on its strand: the requests in flight (each a generation that
// writes one response per token), the write queue (one write outstanding at a time), and when to
// Finish: once the client closed its side and every request and write completed, or once cancelled.
struct StreamState {
  StreamState(ServerContext& c, asio::any_io_executor s, StreamReactorBase* r) : context(c), strand(std::move(s)), reactor(r) {}

  void write(std::unique_ptr<pb::ModelStreamInferResponse> response) {
    if (finished || cancelled) return;
    writes.push_back(std::move(response));
    if (!writing) start_write();
  }
  void on_write_done(bool ok) {
    writing = false;
    writes.pop_front();
    if (!ok) cancel();
    else if (!writes.empty() && !finished) start_write();
    maybe_finish();
  }
  void cancel() {
    cancelled = true;
    while (writes.size() > (writing ? 1u : 0u)) writes.pop_back();
    for (CallExchange* e : exchanges) e->cancel();
    maybe_finish();
  }
  void maybe_finish() {
    if (finished || writing || in_flight > 0 || (!reads_done && !cancelled)) return;
    finished = true;  // the reactor is not touched again: OnDone may delete it from now on
    reactor->Finish(cancelled ? grpc::Status(grpc::StatusCode::CANCELLED, "grpc: the stream was cancelled") : grpc::Status::OK);
  }

  ServerContext& context;
  asio::any_io_executor strand;
  StreamReactorBase* reactor;  // until finished
  Clock::time_point call_deadline = Clock::time_point::max();
  std::deque<std::unique_ptr<pb::ModelStreamInferResponse>> writes;  // the front one is being written when `writing`
  std::unordered_set<CallExchange*> exchanges;                       // of the requests in flight
  size_t in_flight = 0;
  bool writing = false;
  bool reads_done = false;
  bool cancelled = false;
  bool finished = false;

 private:
  void start_write() {
    writing = true;
    reactor->StartWrite(writes.front().get());
  }
};

// One streamed response: `text` as the contract's text output ("output" or "sentences", shape [1, 1]).
// Parameters: triton_final_response (true on the request's last response), finish_reason on a
// sample's last piece, sample_index when the request has more than one sample.
std::unique_ptr<pb::ModelStreamInferResponse> piece(const Prepared& p, const pb::ModelInferRequest& message, const SampleEvent& e,
                                                    bool final) {
  auto out = std::make_unique<pb::ModelStreamInferResponse>();
  pb::ModelInferResponse& r = *out->mutable_infer_response();
  set_header(r, *p.model, message);
  Tensor t;
  t.name = p.plan.contract.outputs.front().name;
  t.datatype = DataType::bytes;
  t.shape = {1, 1};
  t.strings.push_back(e.finished ? e.finish.text : e.token.text);
  encode_grpc_outputs({{std::move(t), true}}, p.raw, r);
  auto& parameters = *r.mutable_parameters();
  parameters["triton_final_response"].set_bool_param(final);
  if (e.finished) parameters["finish_reason"].set_string_param(std::string(to_string(e.finish.reason)));
  if (p.plan.prompts.size() > 1) parameters["sample_index"].set_int64_param(static_cast<int64_t>(e.sample));
  return out;
}

Task<void> stream_one(std::shared_ptr<StreamState> s, std::shared_ptr<pb::ModelInferRequest> message) {
  CallExchange exchange(s->strand);
  s->exchanges.insert(&exchange);
  if (s->cancelled) exchange.cancel();
  ServerContext& context = s->context;
  RequestTiming timing;
  timing.received = Clock::now();
  std::exception_ptr error;
  try {
    Prepared p = prepare(context, *message, s->call_deadline);
    const size_t num_samples = p.plan.prompts.size();
    size_t num_finished = 0;
    auto send = [&](SampleEvent e) {
      const bool final = e.finished && ++num_finished == num_samples;
      s->write(piece(p, *message, e, final));
    };
    // A sample of max_tokens 0 is not run (kserve_plan_infer): its last piece, empty, goes at once.
    for (size_t i = 0, next = 0; i < num_samples; ++i) {
      if (next < p.plan.sample_of.size() && p.plan.sample_of[next] == i) {
        ++next;
        continue;
      }
      SampleEvent skipped;
      skipped.sample = i;
      skipped.finished = true;
      send(skipped);
    }
    const bool runs = !p.plan.samples.empty();
    timing.submitted = Clock::now();
    Generation generation(context.generation(), exchange);
    if (runs) co_await generation.submit(std::move(p.plan.samples), Generation::SubmitOn::inline_when_small);
    while (runs) {
      const std::vector<SampleEvent> events = co_await generation.next();
      if (events.empty()) break;
      for (SampleEvent e : events) {
        generation.throw_if_failed(e);
        if (!e.finished && e.token.text.empty()) continue;  // an incomplete character: its text comes with the next token
        e.sample = p.plan.sample_of.at(e.sample);
        send(std::move(e));
      }
    }
    // Each piece is encoded as it arrives: the output's share of a stream is in compute_infer.
    timing.first_event = runs ? generation.first_event_at() : timing.submitted;
    timing.finished = timing.encoded = runs ? generation.last_finish_at() : timing.submitted;
    context.metrics.count_inference_success(p.model->name, timing, static_cast<int64_t>(num_samples));
  } catch (const ClientGone&) {
    context.metrics.count_inference_failure(message->model_name(), FailureReason::canceled, timing.received);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    // As Triton: the stream goes on; this request's answer is its error message.
    const ErrorReply reply = classify_error(error, context.options);
    context.metrics.count_inference_failure(message->model_name(), failure_reason(reply.status), timing.received);
    log::warn("grpc: ModelStreamInfer '{}' -> {}: {}", message->model_name(), reply.status, reply.message);
    auto out = std::make_unique<pb::ModelStreamInferResponse>();
    out->set_error_message(reply.message);
    out->mutable_infer_response()->set_model_name(message->model_name());
    out->mutable_infer_response()->set_id(message->id());
    s->write(std::move(out));
  }
  s->exchanges.erase(&exchange);
  --s->in_flight;
  s->maybe_finish();
}

// Reads requests one after another and starts each on the stream's strand as it arrives (several
// may run at once). Every state change happens on the strand; the reactor only forwards events.
class StreamReactor final : public StreamReactorBase {
 public:
  StreamReactor(ServerContext& context, asio::io_context& io, grpc::CallbackServerContext* call)
      : state_(std::make_shared<StreamState>(context, asio::make_strand(io), this)) {
    try {
      check_key(context, *call);
    } catch (...) {
      state_->finished = true;
      Finish(status_of(context, std::current_exception(), "ModelStreamInfer"));
      return;
    }
    state_->call_deadline = deadline_of(*call);
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      asio::post(state_->strand, [s = state_] {
        s->reads_done = true;
        s->maybe_finish();
      });
      return;
    }
    auto message = std::make_shared<pb::ModelInferRequest>(std::move(incoming_));
    incoming_.Clear();
    asio::post(state_->strand, [s = state_, message, this] {
      if (s->finished || s->cancelled) return;
      ++s->in_flight;
      asio::co_spawn(s->strand, stream_one(s, message), asio::detached);
      StartRead(&incoming_);  // not finished: the reactor is alive
    });
  }
  void OnWriteDone(bool ok) override {
    asio::post(state_->strand, [s = state_, ok] { s->on_write_done(ok); });
  }
  void OnCancel() override {
    asio::post(state_->strand, [s = state_] { s->cancel(); });
  }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<StreamState> state_;
  pb::ModelInferRequest incoming_;
};

// Answers a cheap call at once, on the gRPC thread: `fill` throws what the HTTP handlers throw.
template <typename Fill>
grpc::ServerUnaryReactor* answer(grpc::CallbackServerContext* call, const ServerContext& context, std::string_view what,
                                 Fill fill) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  try {
    fill();
    reactor->Finish(grpc::Status::OK);
  } catch (...) {
    reactor->Finish(status_of(context, std::current_exception(), std::string(what)));
  }
  return reactor;
}

class Service final : public pb::GRPCInferenceService::CallbackService {
 public:
  Service(ServerContext& context, asio::io_context& io) : context_(context), io_(io) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* call, const pb::ServerLiveRequest*,
                                       pb::ServerLiveResponse* response) override {
    return answer(call, context_, "ServerLive", [&] { response->set_live(true); });
  }
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* call, const pb::ServerReadyRequest*,
                                        pb::ServerReadyResponse* response) override {
    return answer(call, context_, "ServerReady", [&] { response->set_ready(kserve_health_ready(context_).status == 200); });
  }
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* call, const pb::ModelReadyRequest* request,
                                       pb::ModelReadyResponse* response) override {
    return answer(call, context_, "ModelReady", [&] {
      response->set_ready(kserve_model_ready(context_, {request->name(), request->version()}).status == 200);
    });
  }
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* call, const pb::ServerMetadataRequest*,
                                           pb::ServerMetadataResponse* response) override {
    return answer(call, context_, "ServerMetadata", [&] { from_json(kserve_server_metadata(context_), *response); });
  }
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* call, const pb::ModelMetadataRequest* request,
                                          pb::ModelMetadataResponse* response) override {
    return answer(call, context_, "ModelMetadata", [&] {
      from_json(kserve_model_metadata(context_, {request->name(), request->version()}), *response);
    });
  }
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* call, const pb::ModelConfigRequest* request,
                                        pb::ModelConfigResponse* response) override {
    return answer(call, context_, "ModelConfig", [&] {
      from_json(kserve_model_config(context_, {request->name(), request->version()}), *response->mutable_config());
    });
  }
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* call, const pb::ModelStatisticsRequest* request,
                                            pb::ModelStatisticsResponse* response) override {
    return answer(call, context_, "ModelStatistics", [&] {
      from_json(kserve_model_stats(context_, {request->name(), request->version()}), *response);
    });
  }
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* call, const pb::ModelInferRequest* request,
                                       pb::ModelInferResponse* response) override {
    return new InferReactor(context_, io_, call, request, response);
  }
  StreamReactorBase* ModelStreamInfer(grpc::CallbackServerContext* call) override {
    return new StreamReactor(context_, io_, call);
  }

 private:
  ServerContext& context_;
  asio::io_context& io_;
};

}  // namespace

struct GrpcServer::Impl {
  explicit Impl(ServerContext& c) : context(c), service(c, io) {}

  ServerContext& context;
  asio::io_context io{kNumHandlerThreads};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::vector<std::thread> threads;
  Service service;
  std::unique_ptr<grpc::Server> server;
  int port = -1;
  bool stopped = false;
};

GrpcServer::GrpcServer(const GrpcOptions& options, HttpServer& http) : impl_(std::make_unique<Impl>(http.context())) {
  const bool ipv6 = options.address.find(':') != std::string::npos;
  const std::string endpoint =
      ipv6 ? fmt::format("[{}]:{}", options.address, options.port) : fmt::format("{}:{}", options.address, options.port);
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort(endpoint, grpc::InsecureServerCredentials(), &selected);
  builder.RegisterService(&impl_->service);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a port in use is an error, not shared
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);  // no BDP pings: small messages, loopback or a LAN
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(impl_->context.options.max_body_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(-1);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || selected == 0) {
    if (impl_->server) impl_->server->Shutdown();
    throw Error(ErrorCode::usage, fmt::format("server: cannot listen on {} (--grpc-port): the port is in use or the address "
                                              "is not this host's (free the port, choose another, or --grpc-port -1)",
                                              endpoint));
  }
  impl_->port = selected;
  for (int i = 0; i < kNumHandlerThreads; ++i) impl_->threads.emplace_back([this] { impl_->io.run(); });
}

GrpcServer::~GrpcServer() { stop(); }

int GrpcServer::port() const { return impl_->port; }

void GrpcServer::stop() {
  Impl& impl = *impl_;
  if (impl.stopped) return;
  impl.stopped = true;
  // Cancels the calls still running at the deadline (OnCancel ends their generations on the
  // handler threads, which still run) and returns once every call is done.
  impl.server->Shutdown(std::chrono::system_clock::now() + kStopGrace);
  impl.work.reset();
  impl.io.stop();
  for (std::thread& t : impl.threads) t.join();
  impl.threads.clear();
}

}  // namespace rankserve::net
