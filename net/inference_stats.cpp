#include "net/inference_stats.h"

#include <algorithm>

namespace rankserve::net {

namespace {

uint64_t unix_ms_now() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

ModelStatistics& entry(std::map<std::string, ModelStatistics>& models, const std::string& model) {
  ModelStatistics& m = models[model];
  m.name = model;
  return m;
}

}  // namespace

void DurationStat::add(Clock::duration d) {
  ++count;
  ns += static_cast<uint64_t>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

void InferenceStats::record_success(const std::string& model, const RequestTiming& timing, int64_t num_samples) {
  std::lock_guard lock(mutex_);
  ModelStatistics& m = entry(models_, model);
  m.last_inference_ms = unix_ms_now();
  m.inference_count += static_cast<uint64_t>(std::max<int64_t>(num_samples, 0));
  m.success.add(timing.encoded - timing.received);
  m.compute_input.add(timing.submitted - timing.received);
  m.queue.add(timing.first_event - timing.submitted);
  m.compute_infer.add(timing.finished - timing.first_event);
  m.compute_output.add(timing.encoded - timing.finished);
}

void InferenceStats::record_failure(const std::string& model, Clock::time_point received) {
  std::lock_guard lock(mutex_);
  ModelStatistics& m = entry(models_, model);
  m.last_inference_ms = unix_ms_now();
  m.fail.add(Clock::now() - received);
}

std::vector<ModelStatistics> InferenceStats::all(const std::string& served, uint64_t served_steps) const {
  std::lock_guard lock(mutex_);
  std::map<std::string, ModelStatistics> models = models_;
  entry(models, served).execution_count = served_steps;
  std::vector<ModelStatistics> out;
  for (auto& [name, m] : models) out.push_back(std::move(m));
  return out;
}

}  // namespace rankserve::net
