// One HTTP request's generation: the samples it submits to the GenerationService (one submit per
// sample; they run concurrently in the continuous batch), the events the engine sends back, handed
// from the engine thread to the connection's strand, and cancellation when the client goes away.
// Used by the KServe and OpenAI handlers.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/generation_service.h"
#include "net/exchange.h"

namespace rankserve::net {

class Metrics;

// Request ids submitted and not finished, over every connection, so HttpServer::stop() can cancel
// them. Any thread.
class InflightRequests {
 public:
  void add(RequestId id);
  void remove(RequestId id);
  std::vector<RequestId> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_set<RequestId> ids_;
};

// An engine event for sample `sample`, stamped when the engine delivered it.
struct SampleEvent {
  size_t sample = 0;
  bool finished = false;  // finish is set, token is not
  TokenEvent token;
  FinishEvent finish;
  Clock::time_point at;
};

// What one sample produced so far.
struct SampleState {
  RequestId id = 0;
  bool finished = false;
  std::string text;                // the continuation: every TokenEvent::text, then FinishEvent::text
  std::vector<TokenEvent> tokens;  // every token event, in order
  FinishEvent finish;              // valid when finished
  Clock::time_point submitted_at;
  Clock::time_point last_token_at;
};

struct GenerationContext {
  GenerationService& service;
  InflightRequests& inflight;
  Metrics& metrics;
  boost::asio::thread_pool& work_pool;  // runs GenerationService::submit, off the I/O threads
};

class EventQueue;

// Strand only (the exchange's executor). Destruction cancels every sample still running.
class Generation {
 public:
  Generation(GenerationContext context, Exchange& exchange);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Submits every request in order (samples 0..n-1) on the work pool (the service tokenizes there,
  // which takes a while for a multi-megabyte prompt) and resumes on the strand. When a submit throws,
  // cancels the samples already submitted and rethrows (Error(overloaded), Error(bad_request), ...).
  // `where`: kOnPool always, or kInlineWhenSmall: submits on the calling strand when the prompts
  // together are at most kInlineSubmitBytes (tokenizing them takes microseconds), saving two thread
  // hops; only for callers whose strand is not an I/O thread (the gRPC handlers).
  enum class SubmitOn { pool, inline_when_small };
  static constexpr size_t kInlineSubmitBytes = 16 * 1024;
  Task<void> submit(std::vector<TextRequest> requests, SubmitOn where = SubmitOn::pool);

  // Waits for the next engine events and applies them to samples(); returns them in order. Empty
  // when every sample has finished. Throws ClientGone (the samples are cancelled) when the client
  // disconnects, and Error(timeout) when no event arrives by the latest deadline plus a grace.
  Task<std::vector<SampleEvent>> next();

  // Waits until every sample finished. Throws the first failed sample's error (Error(timeout) for a
  // deadline, Error(unavailable) for a failed or stopped service), cancelling the others.
  Task<void> finish_all();

  // Throws like finish_all() if `event` is a failed finish; the streaming loops call it per event.
  void throw_if_failed(const SampleEvent& event);
  // Whether throw_if_failed(event) throws: a finish with reason error or cancelled.
  static bool failed(const SampleEvent& event);

  const std::vector<SampleState>& samples() const { return samples_; }
  void cancel_all();
  // When the engine delivered the first event (token or finish) of any sample, and the last
  // sample's finish; Clock::time_point{} before. For the queue/compute statistics.
  Clock::time_point first_event_at() const { return first_event_at_; }
  Clock::time_point last_finish_at() const { return last_finish_at_; }

 private:
  GenerationContext context_;
  Exchange& exchange_;
  std::shared_ptr<EventQueue> queue_;
  std::shared_ptr<boost::asio::steady_timer> wake_;
  std::vector<SampleState> samples_;
  Clock::time_point give_up_ = Clock::time_point::min();
  size_t num_finished_ = 0;
  Clock::time_point first_event_at_{};
  Clock::time_point last_finish_at_{};
};

}  // namespace rankserve::net
