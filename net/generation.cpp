#include "net/generation.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <functional>

#include "net/metrics.h"

namespace rankserve::net {

namespace asio = boost::asio;

// How long past a request's deadline the front end still waits for the service to report it: the
// service fails a request at its deadline itself; this only bounds the wait if it does not.
constexpr auto kDeadlineGrace = std::chrono::seconds(10);

void InflightRequests::add(RequestId id) {
  std::lock_guard lock(mutex_);
  ids_.insert(id);
}

void InflightRequests::remove(RequestId id) {
  std::lock_guard lock(mutex_);
  ids_.erase(id);
}

std::vector<RequestId> InflightRequests::snapshot() const {
  std::lock_guard lock(mutex_);
  return {ids_.begin(), ids_.end()};
}

// Engine thread -> strand hand-off. push() appends under a mutex and calls the notifier, which posts a
// wake-up to the strand; the Generation detaches the notifier before it goes away, so events that
// arrive later (a cancelled request's on_finish) are dropped into a queue nobody reads.
class EventQueue {
 public:
  void push(SampleEvent event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
    if (notify_) notify_();
  }
  bool empty() {
    std::lock_guard lock(mutex_);
    return events_.empty();
  }
  std::vector<SampleEvent> take() {
    std::lock_guard lock(mutex_);
    std::vector<SampleEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
    events_.clear();
    return out;
  }
  void set_notify(std::function<void()> notify) {
    std::lock_guard lock(mutex_);
    notify_ = std::move(notify);
  }

 private:
  std::mutex mutex_;
  std::deque<SampleEvent> events_;
  std::function<void()> notify_;
};

namespace {

class QueueSink final : public GenerationSink {
 public:
  QueueSink(std::shared_ptr<EventQueue> queue, size_t sample) : queue_(std::move(queue)), sample_(sample) {}
  void on_token(const TokenEvent& event) override {
    SampleEvent e;
    e.sample = sample_;
    e.token = event;
    e.at = Clock::now();
    queue_->push(std::move(e));
  }
  void on_finish(const FinishEvent& event) override {
    SampleEvent e;
    e.sample = sample_;
    e.finished = true;
    e.finish = event;
    e.at = Clock::now();
    queue_->push(std::move(e));
  }

 private:
  std::shared_ptr<EventQueue> queue_;
  size_t sample_;
};

// Runs `work` on `pool` and resumes the caller on its own executor (the connection's strand), with
// the exception `work` threw if any. `work` is borrowed: the caller's frame outlives the call.
template <typename Work>
Task<void> run_on(asio::thread_pool& pool, Work& work) {
  co_await asio::co_spawn(
      pool,
      [&work]() -> Task<void> {
        work();
        co_return;
      },
      asio::use_awaitable);
}

double seconds_between(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

}  // namespace

Generation::Generation(GenerationContext context, Exchange& exchange)
    : context_(context),
      exchange_(exchange),
      queue_(std::make_shared<EventQueue>()),
      wake_(std::make_shared<asio::steady_timer>(exchange.executor())) {
  // Runs on the engine thread under the queue's mutex: only posts. The weak pointer lets a wake-up
  // posted just before this Generation ended find nothing.
  std::weak_ptr<asio::steady_timer> weak = wake_;
  queue_->set_notify([executor = exchange.executor(), weak] {
    asio::post(executor, [weak] {
      if (auto timer = weak.lock()) timer->cancel();
    });
  });
}

Generation::~Generation() {
  queue_->set_notify(nullptr);
  cancel_all();
}

Task<void> Generation::submit(std::vector<TextRequest> requests, SubmitOn where) {
  // Every sample queues before the first one runs, so a request of more samples than the queue
  // holds could never be admitted: refused for good (400), not with a 429 to retry.
  if (requests.size() > 1) {
    const int limit = context_.service.status().max_queue_size;
    if (limit > 0 && requests.size() > static_cast<size_t>(limit)) {
      throw Error(ErrorCode::bad_request,
                  fmt::format("request: {} samples (prompts x n) in one request; the server queues at most {} "
                              "(--max-queue-size {}): split the request",
                              requests.size(), limit, limit));
    }
  }
  // The pool thread touches only the service, the queue and the in-flight registry; samples_ is the
  // strand's and is updated once this coroutine is back on it (next() reads events only after that).
  const size_t first = samples_.size();
  std::vector<SampleState> added;
  std::vector<Clock::time_point> deadlines;
  std::exception_ptr error;
  auto submit_all = [&] {
    for (TextRequest& request : requests) {
      const Clock::time_point deadline = request.deadline;
      SampleState state;
      state.submitted_at = Clock::now();
      try {
        state.id = context_.service.submit(std::move(request), std::make_shared<QueueSink>(queue_, first + added.size()));
      } catch (...) {
        error = std::current_exception();
        return;
      }
      context_.inflight.add(state.id);
      added.push_back(std::move(state));
      deadlines.push_back(deadline);
    }
  };
  size_t prompt_bytes = 0;
  for (const TextRequest& request : requests) prompt_bytes += request.prompt.size();
  if (where == SubmitOn::inline_when_small && prompt_bytes <= kInlineSubmitBytes) submit_all();
  else co_await run_on(context_.work_pool, submit_all);
  for (size_t i = 0; i < added.size(); ++i) {
    samples_.push_back(std::move(added[i]));
    const Clock::time_point give_up =
        deadlines[i] >= Clock::time_point::max() - kDeadlineGrace ? Clock::time_point::max() : deadlines[i] + kDeadlineGrace;
    give_up_ = std::max(give_up_, give_up);
  }
  if (error) {
    cancel_all();
    std::rethrow_exception(error);
  }
}

void Generation::cancel_all() {
  for (SampleState& s : samples_) {
    if (s.finished) continue;
    context_.service.cancel(s.id);
    context_.inflight.remove(s.id);
  }
}

Task<std::vector<SampleEvent>> Generation::next() {
  for (;;) {
    std::vector<SampleEvent> events = queue_->take();
    if (!events.empty()) {
      for (SampleEvent& e : events) {
        SampleState& s = samples_.at(e.sample);
        if (s.finished) continue;  // cannot happen: on_finish is the last event
        if (first_event_at_ == Clock::time_point{}) first_event_at_ = e.at;
        if (e.finished) {
          s.finished = true;
          s.finish = e.finish;
          s.text += e.finish.text;
          ++num_finished_;
          last_finish_at_ = std::max(last_finish_at_, e.at);
          context_.inflight.remove(s.id);
          if (e.finish.reason != FinishReason::error && e.finish.reason != FinishReason::cancelled) {
            context_.metrics.observe_request_duration(seconds_between(s.submitted_at, e.at));
          }
        } else {
          if (s.tokens.empty()) {
            context_.metrics.observe_time_to_first_token(seconds_between(s.submitted_at, e.at));
          } else {
            context_.metrics.observe_inter_token_latency(seconds_between(s.last_token_at, e.at));
          }
          s.last_token_at = e.at;
          s.text += e.token.text;
          s.tokens.push_back(e.token);
        }
      }
      co_return events;
    }
    if (num_finished_ == samples_.size()) co_return std::vector<SampleEvent>{};
    if (Clock::now() >= give_up_) {
      cancel_all();
      throw Error(ErrorCode::timeout, "request: the service did not finish the request by its deadline");
    }
    wake_->expires_at(give_up_);
    try {
      // The queue is checked again right before the wait starts, in the same strand turn: watch_client
      // may start this operation a turn later, after a wake-up posted meanwhile has already run.
      co_await exchange_.watch_client(
          [](std::shared_ptr<EventQueue> queue, std::shared_ptr<asio::steady_timer> timer) -> Task<void> {
            if (!queue->empty()) co_return;
            co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
          }(queue_, wake_));
    } catch (const ClientGone&) {
      cancel_all();
      throw;
    }
  }
}

bool Generation::failed(const SampleEvent& event) {
  return event.finished && (event.finish.reason == FinishReason::error || event.finish.reason == FinishReason::cancelled);
}

void Generation::throw_if_failed(const SampleEvent& event) {
  if (!failed(event)) return;
  const FinishEvent& f = event.finish;
  if (f.reason == FinishReason::error) {
    cancel_all();
    throw Error(f.error_code, f.error_message.empty() ? "server: the request failed" : f.error_message);
  }
  if (f.reason == FinishReason::cancelled) {
    cancel_all();
    throw Error(ErrorCode::unavailable, "server: the request was cancelled by the server (shutting down)");
  }
}

Task<void> Generation::finish_all() {
  for (;;) {
    std::vector<SampleEvent> events = co_await next();
    if (events.empty()) co_return;
    for (const SampleEvent& e : events) throw_if_failed(e);
  }
}

}  // namespace rankserve::net
