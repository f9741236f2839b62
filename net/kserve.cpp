#include "net/kserve.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include <charconv>
#include <limits>

#include "net/json_fields.h"
#include "net/kserve_models.h"
#include "net/sse.h"
#include "net/stream_loop.h"
#include "net/tensor.h"

#ifndef RANKSERVE_VERSION
#define RANKSERVE_VERSION "dev"
#endif

namespace rankserve::net {

namespace json = boost::json;

namespace {

constexpr std::string_view kBinaryHeader = "Inference-Header-Content-Length";

ServerResponse json_response(const json::value& value, int status = 200) {
  ServerResponse r;
  r.status = status;
  r.body = serialize_json(value);
  return r;
}

json::array shape_json(const std::vector<int64_t>& dims, bool with_batch) {
  json::array a;
  if (with_batch) a.emplace_back(-1);
  for (int64_t d : dims) a.emplace_back(d);
  return a;
}

std::optional<size_t> binary_header_size(const ServerRequest& request) {
  const auto text = request.header(kBinaryHeader);
  if (!text) return std::nullopt;
  size_t value = 0;
  const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) {
    throw field_error(kBinaryHeader, fmt::format("is '{}'; expected the JSON header's size in bytes", *text));
  }
  return value;
}

// A KServe timeout (microseconds) overrides --request-timeout, longer or shorter; one too large for
// the clock (9223372036854775807, 1e300) saturates to no deadline, as the client asked for no limit.
Clock::time_point deadline_of(const ServerContext& context, std::optional<double> timeout_us) {
  if (!timeout_us) return context.default_deadline();
  return deadline_after(*timeout_us / 1e6);
}

// A generate field: top level first (Triton maps top-level keys to inputs), then `parameters`.
struct GenerateFields {
  const json::object& root;
  const json::object* parameters;

  const json::object* holder(std::string_view key) const {
    if (find_field(root, key) != nullptr) return &root;
    if (parameters != nullptr && find_field(*parameters, key) != nullptr) return parameters;
    return nullptr;
  }
  template <typename Read>
  auto first(std::initializer_list<std::string_view> keys, Read read) const -> decltype(read(root, std::string_view())) {
    for (std::string_view key : keys) {
      if (const json::object* o = holder(key)) return read(*o, key);
    }
    return {};
  }
  std::optional<int64_t> integer(std::initializer_list<std::string_view> keys) const {
    return first(keys, [](const json::object& o, std::string_view k) { return read_int(o, k); });
  }
  std::optional<double> number(std::initializer_list<std::string_view> keys) const {
    return first(keys, [](const json::object& o, std::string_view k) { return read_number(o, k); });
  }
  std::optional<bool> boolean(std::initializer_list<std::string_view> keys) const {
    return first(keys, [](const json::object& o, std::string_view k) { return read_bool(o, k); });
  }
  std::optional<std::vector<std::string>> strings(std::initializer_list<std::string_view> keys) const {
    return first(keys, [](const json::object& o, std::string_view k) { return read_strings(o, k); });
  }
};

TextRequest generate_request(const ServerContext& context, const ModelContract& contract, const json::object& root) {
  GenerateFields f{root, read_object(root, "parameters")};
  TextRequest r;
  const auto prompt = read_string(root, "text_input");
  const auto prompt_alt = read_string(root, contract.prompt_input);
  if (!prompt && !prompt_alt) throw field_error("text_input", "is missing; expected the prompt string");
  r.prompt = prompt ? *prompt : *prompt_alt;
  GenerationSettings& s = r.settings;
  if (contract.opt) {
    s.greedy = true;
    s.max_tokens = 16;
  } else {
    s = nemo_default_settings();
  }
  for (std::string_view key : {"max_tokens", "max_length", "output_length"}) {
    if (auto v = f.integer({key})) {
      if (*v < 1) throw field_error(key, fmt::format("is {}; expected new tokens >= 1", *v));
      s.max_tokens =
          static_cast<int>(std::min<int64_t>(*v, std::numeric_limits<int>::max()));  // the service refuses more than its context
      // NeMo's own name on NeMo's contract is clipped to the context as NeMo does (as on infer).
      if (key == "max_length" && !contract.opt && contract.max_context > 0) {
        s.max_tokens = std::min(s.max_tokens, contract.max_context);
      }
      s.max_tokens_field = std::string(key);
      break;
    }
  }
  if (auto v = f.integer({"min_tokens", "min_length"})) {
    if (*v < 0) throw field_error("min_tokens", fmt::format("is {}; expected >= 0", *v));
    s.min_tokens = static_cast<int>(std::min<int64_t>(*v, s.max_tokens));
  }
  const auto temperature = f.number({"temperature"});
  if (auto greedy = f.boolean({"use_greedy"})) s.greedy = *greedy;
  else if (temperature) s.greedy = *temperature == 0;  // a temperature without use_greedy asks for sampling unless 0
  if (temperature) {
    if (*temperature < 0 || (!s.greedy && *temperature == 0))
      throw field_error("temperature", fmt::format("is {}; expected > 0", *temperature));
    if (*temperature > 0) s.temperature = to_float32(*temperature, "temperature");
  }
  if (auto v = f.integer({"top_k"})) {
    if (*v < 0) throw field_error("top_k", fmt::format("is {}; expected 0 (no limit) or more", *v));
    s.top_k = static_cast<int>(std::min<int64_t>(*v, std::numeric_limits<int>::max()));
  }
  if (auto v = f.number({"top_p"})) {
    if (*v < 0 || *v > 1) throw field_error("top_p", fmt::format("is {}; expected 0..1", *v));
    s.top_p = *v == 0 ? 1.0f : to_float32(*v, "top_p");
  }
  if (auto v = f.number({"repetition_penalty"})) {
    if (!(*v > 0)) throw field_error("repetition_penalty", fmt::format("is {}; expected > 0", *v));
    s.repetition_penalty = to_float32(*v, "repetition_penalty");
  }
  if (auto v = f.boolean({"add_BOS", "add_bos"})) s.add_bos = *v;
  if (auto v = f.integer({"seed", "random_seed"})) s.seed = static_cast<uint64_t>(*v);
  if (auto v = f.strings({"end_strings"})) {
    s.stop = *v;
    s.keep_stop = true;
  } else if (auto stop = f.strings({"stop"})) {
    s.stop = *stop;
    s.keep_stop = false;
  }
  std::erase(s.stop, std::string());
  r.deadline = context.default_deadline();
  if (auto timeout = f.number({"timeout"})) {
    if (*timeout < 0) throw field_error("timeout", fmt::format("is {}; expected microseconds >= 0", *timeout));
    if (*timeout > 0) r.deadline = deadline_of(context, *timeout);
  }
  return r;
}

// One generate (or generate_stream) output: {"model_name", "model_version", "text_output"}.
json::object generate_output(std::string_view model_name, std::string_view text) {
  return json::object{{"model_name", model_name}, {"model_version", "1"}, {"text_output", text}};
}

// generate_stream: one event per token (empty text too), the last one with any held-back text and
// the finish_reason; no trailer.
class KserveGenerateFraming final : public StreamFraming {
 public:
  KserveGenerateFraming(ServerContext& context, const std::string& model_name, RequestTiming& timing)
      : context_(context), model_name_(model_name), timing_(timing) {}

  void frame_event(const StreamEvent& e, std::string& out) override {
    if (!e.event.finished) {
      out += sse_frame(serialize_json(generate_output(model_name_, e.event.token.text)));
      return;
    }
    json::object last = generate_output(model_name_, e.event.finish.text);
    last["finish_reason"] = to_string(e.event.finish.reason);
    out += sse_frame(serialize_json(last));
  }

  void frame_trailer(const Generation& generation, std::string&) override {
    // Each event is encoded as it arrives: the output's share of a stream is in compute_infer.
    timing_.first_event = generation.first_event_at();
    timing_.finished = timing_.encoded = generation.last_finish_at();
    context_.metrics.count_inference_success(model_name_, timing_, 1);
  }

 private:
  ServerContext& context_;
  const std::string& model_name_;
  RequestTiming& timing_;
};

}  // namespace

const ModelInfo& kserve_find_model(const ServerContext& context, const RouteParams& params) {
  const ModelInfo& model = context.service.model();
  if (params.model != model.name) {
    throw Error(ErrorCode::not_found,
                fmt::format("kserve: unknown model '{}'; this server serves '{}'", params.model, model.name));
  }
  if (!params.version.empty() && params.version != "1") {
    throw Error(ErrorCode::not_found,
                fmt::format("kserve: model '{}' has no version '{}'; its only version is 1", model.name, params.version));
  }
  return model;
}

ServerResponse kserve_server_metadata(const ServerContext& context) {
  (void)context;
  return json_response(json::object{
      {"name", "rankserve"},
      {"version", RANKSERVE_VERSION},
      {"extensions", json::array{"binary_tensor_data", "parameters", "schedule_policy", "generate", "statistics"}},
  });
}

ServerResponse kserve_health_live() { return json_response(json::object{{"live", true}}); }

ServerResponse kserve_health_ready(const ServerContext& context) {
  const ServiceStatus status = context.service.status();
  if (status.ready) return json_response(json::object{{"ready", true}});
  return json_response(
      json::object{
          {"ready", false},
          {"error", fmt::format("server: not ready: {}", status.not_ready_reason.empty() ? "unknown" : status.not_ready_reason)}},
      503);
}

ServerResponse kserve_model_metadata(const ServerContext& context, const RouteParams& params) {
  const ModelInfo& model = kserve_find_model(context, params);
  const ModelContract contract = contract_for(model);
  auto specs = [](const std::vector<TensorSpec>& list) {
    json::array a;
    for (const TensorSpec& s : list) {
      a.push_back(json::object{{"name", s.name}, {"datatype", to_string(s.datatype)}, {"shape", shape_json(s.dims, true)}});
    }
    return a;
  };
  return json_response(json::object{{"name", model.name},
                                    {"versions", json::array{"1"}},
                                    {"platform", "rankserve"},
                                    {"inputs", specs(contract.inputs)},
                                    {"outputs", specs(contract.outputs)}});
}

ServerResponse kserve_model_ready(const ServerContext& context, const RouteParams& params) {
  kserve_find_model(context, params);
  ServerResponse r = kserve_health_ready(context);
  return r;
}

ServerResponse kserve_model_config(const ServerContext& context, const RouteParams& params) {
  const ModelInfo& model = kserve_find_model(context, params);
  const ModelContract contract = contract_for(model);
  json::array inputs;
  for (const TensorSpec& s : contract.inputs) {
    inputs.push_back(json::object{{"name", s.name},
                                  {"data_type", config_type(s.datatype)},
                                  {"format", "FORMAT_NONE"},
                                  {"dims", shape_json(s.dims, false)},
                                  {"optional", s.optional}});
  }
  json::array outputs;
  for (const TensorSpec& s : contract.outputs) {
    outputs.push_back(
        json::object{{"name", s.name}, {"data_type", config_type(s.datatype)}, {"dims", shape_json(s.dims, false)}});
  }
  auto parameter = [](const std::string& value) { return json::object{{"string_value", value}}; };
  return json_response(json::object{
      {"name", model.name},
      {"platform", "rankserve"},
      {"backend", "rankserve"},
      {"version_policy", json::object{{"specific", json::object{{"versions", json::array{1}}}}}},
      {"max_batch_size", contract.max_batch_size},
      {"input", std::move(inputs)},
      {"output", std::move(outputs)},
      {"dynamic_batching", json::object{}},
      {"model_transaction_policy", json::object{{"decoupled", false}}},
      {"parameters", json::object{{"family", parameter(model.family)},
                                  {"source", parameter(model.source)},
                                  {"max_context", parameter(std::to_string(model.max_context))}}},
  });
}

InferPlan kserve_plan_infer(const ServerContext& context, const ModelInfo& model, const InferRequest& request,
                            Clock::time_point limit) {
  InferPlan plan;
  plan.contract = contract_for(model);
  check_requested_outputs(plan.contract, request);
  std::vector<TextRequest> requests =
      build_requests(plan.contract, request, std::min(deadline_of(context, request.timeout_us), limit));
  // A sample of no new tokens (OPT's output_length 0) is its prompt alone, as the OPT example
  // answers it: it never reaches the service, whose requests generate at least one token.
  for (size_t i = 0; i < requests.size(); ++i) {
    plan.prompts.push_back(requests[i].prompt);
    if (requests[i].settings.max_tokens <= 0) continue;
    plan.sample_of.push_back(i);
    plan.samples.push_back(std::move(requests[i]));
  }
  return plan;
}

Task<InferResult> kserve_run_infer(ServerContext& context, Exchange& exchange, const ModelInfo& model,
                                   const InferRequest& request, Clock::time_point limit, RequestTiming& timing,
                                   Generation::SubmitOn submit_on) {
  InferPlan plan = kserve_plan_infer(context, model, request, limit);
  const bool runs = !plan.samples.empty();
  timing.submitted = Clock::now();
  Generation generation(context.generation(), exchange);
  if (runs) {
    co_await generation.submit(std::move(plan.samples), submit_on);
    co_await generation.finish_all();
  }
  timing.first_event = runs ? generation.first_event_at() : timing.submitted;
  timing.finished = runs ? generation.last_finish_at() : timing.submitted;
  std::vector<SampleState> samples(plan.prompts.size());
  for (SampleState& empty : samples) empty.finished = true;
  for (size_t i = 0; i < plan.sample_of.size(); ++i) samples[plan.sample_of[i]] = generation.samples().at(i);
  co_return InferResult{build_outputs(plan.contract, request, plan.prompts, samples), static_cast<int64_t>(plan.prompts.size())};
}

Task<void> kserve_infer(ServerContext& context, Exchange& exchange, RouteParams params) {
  const ModelInfo& model = kserve_find_model(context, params);
  RequestTiming timing;
  timing.received = Clock::now();
  const InferRequest request = decode_infer_request(exchange.request().body, binary_header_size(exchange.request()));
  const InferResult result = co_await kserve_run_infer(context, exchange, model, request, Clock::time_point::max(), timing);
  const EncodedResponse encoded = encode_infer_response(model.name, request.id, result.outputs);
  ServerResponse response;
  response.body = encoded.body;
  if (encoded.json_size) {
    response.content_type = "application/octet-stream";
    response.headers.emplace_back(std::string(kBinaryHeader), std::to_string(*encoded.json_size));
  }
  timing.encoded = Clock::now();
  context.metrics.count_inference_success(model.name, timing, result.num_samples);
  co_await exchange.respond(std::move(response));
}

Task<void> kserve_generate(ServerContext& context, Exchange& exchange, RouteParams params, bool stream) {
  const ModelInfo& model = kserve_find_model(context, params);
  RequestTiming timing;
  timing.received = Clock::now();
  const json::object root = parse_json_object(exchange.request().body);
  TextRequest request = generate_request(context, contract_for(model), root);

  timing.submitted = Clock::now();
  Generation generation(context.generation(), exchange);
  std::vector<TextRequest> one;
  one.push_back(std::move(request));
  co_await generation.submit(std::move(one));
  if (!stream) {
    co_await generation.finish_all();
    timing.first_event = generation.first_event_at();
    timing.finished = generation.last_finish_at();
    ServerResponse response;
    json::object body = generate_output(model.name, generation.samples()[0].text);
    body["finish_reason"] = to_string(generation.samples()[0].finish.reason);
    response.body = serialize_json(body);
    timing.encoded = Clock::now();
    context.metrics.count_inference_success(model.name, timing, 1);
    co_await exchange.respond(std::move(response));
    co_return;
  }
  KserveGenerateFraming framing(context, model.name, timing);
  co_await stream_events(exchange, generation, framing);
}

}  // namespace rankserve::net
