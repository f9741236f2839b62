// Triton's per-model inference statistics (the statistics extension, GET /v2/models/stats, and the
// nv_inference_* duration counters in /metrics), fed by the KServe handlers from the request path.
// Plain values without JSON or Beast, so every surface (HTTP, gRPC) records into and reads one copy.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/generation_service.h"

namespace rankserve::net {

// Triton's StatisticDuration: how many, and their summed duration in nanoseconds.
struct DurationStat {
  uint64_t count = 0;
  uint64_t ns = 0;
  void add(Clock::duration d);
};

// One model version's totals since the server started.
struct ModelStatistics {
  std::string name;
  std::string version = "1";       // every served model is version 1
  uint64_t last_inference_ms = 0;  // milliseconds since the Unix epoch of the last request's end; 0: none yet
  uint64_t inference_count = 0;    // samples of successful requests (a batch of n counts n)
  uint64_t execution_count = 0;    // model executions: engine steps, each running the whole batch once
  DurationStat success;            // whole successful requests: body received to response ready
  DurationStat fail;               // failed requests, body received to the error
  DurationStat queue;              // submit to the request's first engine event (waiting, then the prompt's prefill)
  DurationStat compute_input;      // decoding and validating the request, up to the submit
  DurationStat compute_infer;      // first engine event to the last sample's finish
  DurationStat compute_output;     // the last finish to the encoded response
};

// The moments of one successful KServe request, stamped by its handler (steady clock).
struct RequestTiming {
  Clock::time_point received;     // the handler started (the body was in)
  Clock::time_point submitted;    // the samples were handed to the service
  Clock::time_point first_event;  // the first token or finish of any sample
  Clock::time_point finished;     // every sample finished
  Clock::time_point encoded;      // the response body is ready to write
};

// Any thread; every method locks.
class InferenceStats {
 public:
  void record_success(const std::string& model, const RequestTiming& timing, int64_t num_samples);
  void record_failure(const std::string& model, Clock::time_point received);

  // Every model recorded so far, and `served` even when it has none yet, ordered by name; the
  // served model's execution_count is `served_steps` (ServiceStatus::steps_total: the engine runs
  // one model, and its steps are the executions).
  std::vector<ModelStatistics> all(const std::string& served, uint64_t served_steps) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, ModelStatistics> models_;
};

}  // namespace rankserve::net
