#include "net/metrics.h"

#include <fmt/format.h>

#include <limits>

namespace rankserve::net {

namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string escape_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double value) {
  if (value == std::numeric_limits<double>::infinity()) return "+Inf";
  return fmt::format("{}", value);
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void gauge(std::string& out, std::string_view name, std::string_view help, double value) {
  header(out, name, "gauge", help);
  out += fmt::format("{} {}\n", name, number(value));
}

void counter(std::string& out, std::string_view name, std::string_view help, double value) {
  header(out, name, "counter", help);
  out += fmt::format("{} {}\n", name, number(value));
}

std::string_view to_label(FailureReason reason) {
  switch (reason) {
    case FailureReason::rejected: return "REJECTED";
    case FailureReason::canceled: return "CANCELED";
    case FailureReason::backend: return "BACKEND";
    case FailureReason::other: return "OTHER";
  }
  return "OTHER";
}

// Token latencies are tens of milliseconds; first tokens wait in the queue too; whole requests take seconds.
const std::vector<double> kLatencyBounds = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                            0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0};
const std::vector<double> kRequestBounds = {0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0};

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t bucket = 0;
  while (bucket < upper_bounds_.size() && value > upper_bounds_[bucket]) ++bucket;
  std::lock_guard lock(mutex_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, std::string_view name) const {
  std::lock_guard lock(mutex_);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    cumulative += counts_[i];
    const double bound = i < upper_bounds_.size() ? upper_bounds_[i] : std::numeric_limits<double>::infinity();
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, number(bound), cumulative);
  }
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, number(sum_), name, count_);
}

Metrics::Metrics()
    : time_to_first_token_(kLatencyBounds), inter_token_latency_(kLatencyBounds), request_duration_(kRequestBounds) {}

void Metrics::count_http_request(std::string_view endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++http_requests_[{std::string(endpoint), status}];
}

void Metrics::count_inference_success(const std::string& model, const RequestTiming& timing, int64_t num_samples) {
  inference_stats_.record_success(model, timing, num_samples);
}

void Metrics::count_inference_failure(const std::string& model, FailureReason reason, Clock::time_point received) {
  inference_stats_.record_failure(model, received);
  std::lock_guard lock(mutex_);
  ++failures_[model][reason];
}

void Metrics::observe_time_to_first_token(double seconds) { time_to_first_token_.observe(seconds); }
void Metrics::observe_inter_token_latency(double seconds) { inter_token_latency_.observe(seconds); }
void Metrics::observe_request_duration(double seconds) { request_duration_.observe(seconds); }

std::string Metrics::render(const ServiceStatus& status, const ModelInfo& model) const {
  std::string out;
  {
    std::lock_guard lock(mutex_);
    // Triton's names, labelled model/version like Triton's (every served model is version 1). The
    // served model always appears, with zeros before its first request.
    const std::vector<ModelStatistics> models = inference_stats_.all(model.name, status.steps_total);
    auto per_model = [&](std::string_view name, std::string_view help, auto value_of) {
      header(out, name, "counter", help);
      for (const ModelStatistics& m : models) {
        out += fmt::format("{}{{model=\"{}\",version=\"{}\"}} {}\n", name, escape_label(m.name), m.version,
                           number(static_cast<double>(value_of(m))));
      }
    };
    per_model("nv_inference_request_success", "Successful KServe inference requests (infer and generate).",
              [](const ModelStatistics& m) { return m.success.count; });
    header(out, "nv_inference_request_failure", "counter",
           "Failed KServe inference requests by reason (REJECTED: queue full or not ready; CANCELED: client gone; BACKEND: the "
           "engine failed; OTHER: invalid request).");
    for (const ModelStatistics& m : models) {
      const auto reasons = failures_.find(m.name);
      for (FailureReason r : {FailureReason::rejected, FailureReason::canceled, FailureReason::backend, FailureReason::other}) {
        uint64_t count = 0;
        if (reasons != failures_.end() && reasons->second.contains(r)) count = reasons->second.at(r);
        out += fmt::format("nv_inference_request_failure{{model=\"{}\",version=\"{}\",reason=\"{}\"}} {}\n", escape_label(m.name),
                           m.version, to_label(r), count);
      }
    }
    per_model("nv_inference_count", "Inferences performed by successful requests (a batch of n counts n).",
              [](const ModelStatistics& m) { return m.inference_count; });
    per_model("nv_inference_exec_count", "Model executions: engine steps, each running every sequence of the batch once.",
              [](const ModelStatistics& m) { return m.execution_count; });
    auto us = [](const DurationStat& d) { return static_cast<double>(d.ns) / 1e3; };
    per_model("nv_inference_request_duration_us",
              "Cumulative end-to-end duration of successful KServe inference requests, microseconds.",
              [&](const ModelStatistics& m) { return us(m.success); });
    per_model("nv_inference_queue_duration_us",
              "Cumulative time successful requests waited from submit to their first engine event (queue and prefill), "
              "microseconds.",
              [&](const ModelStatistics& m) { return us(m.queue); });
    per_model("nv_inference_compute_input_duration_us",
              "Cumulative time decoding and validating successful requests, microseconds.",
              [&](const ModelStatistics& m) { return us(m.compute_input); });
    per_model("nv_inference_compute_infer_duration_us",
              "Cumulative generation time of successful requests, first engine event to last finish, microseconds.",
              [&](const ModelStatistics& m) { return us(m.compute_infer); });
    per_model("nv_inference_compute_output_duration_us",
              "Cumulative time encoding the responses of successful requests, microseconds.",
              [&](const ModelStatistics& m) { return us(m.compute_output); });
    header(out, "nv_inference_pending_request_count", "gauge", "Requests accepted by the service and waiting to run.");
    out += fmt::format("nv_inference_pending_request_count{{model=\"{}\",version=\"1\"}} {}\n", escape_label(model.name),
                       status.queue_size);

    header(out, "rankserve_http_requests_total", "counter",
           "Answered HTTP requests by route and status (499: the client went away).");
    for (const auto& [key, count] : http_requests_) {
      out += fmt::format("rankserve_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", escape_label(key.first),
                         key.second, count);
    }
  }
  gauge(out, "rankserve_ready", "1 while the service is ready (every rank loaded and heartbeating, not draining).",
        status.ready ? 1 : 0);
  gauge(out, "rankserve_draining", "1 while the service drains before shutdown.", status.draining ? 1 : 0);
  gauge(out, "rankserve_queue_size", "Requests accepted and not yet running.", status.queue_size);
  gauge(out, "rankserve_max_queue_size", "Queued requests beyond which new ones get 429 (--max-queue-size).",
        status.max_queue_size);
  gauge(out, "rankserve_running_sequences", "Sequences in the running batches, all model copies.", status.running);
  gauge(out, "rankserve_kv_cache_usage_ratio", "Fraction of the KV-cache token budget in use, 0..1.", status.kv_cache_usage);
  counter(out, "rankserve_prompt_tokens_total", "Prompt tokens processed (BOS included).",
          static_cast<double>(status.prompt_tokens_total));
  counter(out, "rankserve_generation_tokens_total", "Tokens generated.", static_cast<double>(status.generated_tokens_total));
  counter(out, "rankserve_engine_steps_total", "Engine steps run since start.", static_cast<double>(status.steps_total));
  header(out, "rankserve_rank_heartbeat_age_seconds", "gauge", "Seconds since each global rank's last heartbeat.");
  for (size_t rank = 0; rank < status.heartbeat_age_s.size(); ++rank) {
    out += fmt::format("rankserve_rank_heartbeat_age_seconds{{rank=\"{}\"}} {}\n", rank, number(status.heartbeat_age_s[rank]));
  }
  header(out, "rankserve_time_to_first_token_seconds", "histogram", "From submit to the first generated token, per sample.");
  time_to_first_token_.render(out, "rankserve_time_to_first_token_seconds");
  header(out, "rankserve_inter_token_latency_seconds", "histogram", "Between consecutive tokens of one sample.");
  inter_token_latency_.render(out, "rankserve_inter_token_latency_seconds");
  header(out, "rankserve_request_duration_seconds", "histogram",
         "From submit to finish of each sample that finished (stop or length).");
  request_duration_.render(out, "rankserve_request_duration_seconds");
  return out;
}

}  // namespace rankserve::net
