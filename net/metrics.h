// Prometheus metrics of the front end (text exposition format 0.0.4), served at /metrics on both
// ports: Triton's nv_inference_* for the KServe surface and rankserve_* (docs/metrics.md). Counters
// are updated by the handlers on any I/O thread; render() adds the service's status snapshot.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/generation_service.h"
#include "net/inference_stats.h"

namespace rankserve::net {

// A cumulative histogram with fixed upper bounds. Any thread.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends `name_bucket{le=...}`, `name_sum`, `name_count` lines (HELP/TYPE are the caller's).
  void render(std::string& out, std::string_view name) const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> upper_bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); the last one is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Why a KServe inference failed, as Triton labels nv_inference_request_failure.
enum class FailureReason { rejected, canceled, backend, other };

class Metrics {
 public:
  Metrics();

  // One line per answered HTTP request; `endpoint` is the route pattern ("/v1/completions",
  // "/v2/models/{model}/infer"), never the raw path.
  void count_http_request(std::string_view endpoint, int status);
  // KServe infer/generate outcomes, recorded in inference_stats() too: success counts `num_samples`
  // inferences and adds the request's durations; a failure counts its reason and its duration
  // from `received` (when the handler started) to now.
  void count_inference_success(const std::string& model, const RequestTiming& timing, int64_t num_samples);
  void count_inference_failure(const std::string& model, FailureReason reason, Clock::time_point received);
  // Triton's statistics extension reads these (GET /v2/models/stats).
  const InferenceStats& inference_stats() const { return inference_stats_; }

  void observe_time_to_first_token(double seconds);
  void observe_inter_token_latency(double seconds);
  void observe_request_duration(double seconds);

  std::string render(const ServiceStatus& status, const ModelInfo& model) const;

 private:
  InferenceStats inference_stats_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> http_requests_;      // (endpoint, status) -> count
  std::map<std::string, std::map<FailureReason, uint64_t>> failures_;  // model -> reason -> count
  Histogram time_to_first_token_;
  Histogram inter_token_latency_;
  Histogram request_duration_;
};

}  // namespace rankserve::net
