// Continuous batching on global rank 0: the GenerationService the HTTP front end calls, and the loop
// that turns its queue into step plans for every rank. HTTP threads call the GenerationService
// methods; the engine thread (the rank's main thread) calls run(); any thread may drain or stop it.
// The parts, each with its own job: admission.h (validation, queue, lifecycle, cancels), placement.h
// (copies and KV budget), plan_builder.h (one plan), delivery.h (tokens to sinks), readiness.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "core/generation_service.h"
#include "runtime/dist/communicator.h"
#include "runtime/engine.h"
#include "runtime/serving/admission.h"
#include "runtime/serving/placement.h"
#include "runtime/serving/readiness.h"
#include "runtime/serving/step_plan.h"
#include "runtime/tokenizer/bpe_tokenizer.h"

namespace rankserve::runtime {

struct SchedulerOptions {
  ModelInfo model;                               // max_context, eos_token_id, max_batch_size (per copy) filled by the caller
  int bos_token_id = -1;                         // prepended when a request's add_bos (or the family default) says so
  bool add_bos_by_default = false;               // OPT: true (its tokenizer prepends </s>); GPT-2/NeMo: false
  int num_copies = 1;                            // data-parallel model copies (dp_size)
  int max_queue_size = 256;                      // queued requests beyond this get Error(overloaded)
  int64_t kv_cache_tokens = 0;                   // per copy: a request joins only while the copies' KV capacity fits; 0: no limit
  int prompt_token_budget = 512;                 // prompt tokens per step, all prefilling sequences together
  std::chrono::milliseconds idle_tick{1000};     // an empty plan at least this often keeps the followers' collectives alive
  std::chrono::milliseconds stall_after{30000};  // not ready when a step takes longer than this
};

class Scheduler final : public GenerationService {
 public:
  // Borrows the tokenizer (rank 0 holds it for the whole run).
  Scheduler(SchedulerOptions options, const BpeTokenizer& tokenizer);
  ~Scheduler() override;

  const ModelInfo& model() const override { return options_.model; }
  ServiceStatus status() const override;
  RequestId submit(TextRequest request, std::shared_ptr<GenerationSink> sink) override;
  void cancel(RequestId id) override;
  int count_tokens(std::string_view text) const override;

  // The serving loop of global rank 0: builds and distributes a plan per iteration, executes it, and
  // streams the chosen tokens to the sinks. Returns after the shutdown plan (after drain() finished
  // the work, or stop()). Collective over every group; followers run follow_plans(). Throws what the
  // engine or a collective throws; the caller fails the requests (fail_all) and stops the job.
  void run(Engine& engine, const ProcessGroups& groups);

  // Readiness off, new requests get Error(unavailable); run() returns once queued and running
  // requests are done. Any thread; idempotent.
  void drain();
  // Ends run() at the next iteration; queued and running requests finish with an error. Any thread.
  void stop(const std::string& reason);
  // Finishes every request with an error naming `reason` (a failed rank); further submits get
  // Error(unavailable). Any thread; for the failure path when the engine cannot go on.
  void fail_all(const std::string& reason);

  // The KV-cache budget per copy in tokens, known once the shards are loaded; before run(). 0: no limit.
  void set_kv_cache_tokens(int64_t tokens);

  // Extra readiness conditions the launcher knows (heartbeats): called by status(). Any thread.
  using HealthProbe = std::function<std::string()>;  // "" healthy, else the reason
  void set_health_probe(HealthProbe probe);
  // Per global rank heartbeat ages for the metrics; optional.
  using HeartbeatAges = std::function<std::vector<double>()>;
  void set_heartbeat_ages(HeartbeatAges ages);

 private:
  struct Counters {
    uint64_t prompt_tokens_total = 0, generated_tokens_total = 0, steps_total = 0;
  };
  // The next plan: waits up to idle_tick while there is nothing to do, builds it (plan_builder.h) and
  // finishes the requests it ended. Engine thread.
  StepPlan next_plan();
  // The step's tokens to the sinks (delivery.h); finished requests leave their copies. Engine thread.
  void deliver(const StepResults& results);

  SchedulerOptions options_;  // read-only but kv_cache_tokens, which mutex_ guards
  const BpeTokenizer& tokenizer_;
  mutable std::mutex mutex_;  // guards queue_ through heartbeat_ages_ (the parts are not thread-safe)
  std::condition_variable wake_;
  AdmissionQueue queue_;
  RunningSet running_;
  StallWatch stall_;
  Counters counters_;
  HealthProbe health_probe_;
  HeartbeatAges heartbeat_ages_;
  std::atomic<RequestId> next_id_{1};
  std::atomic<uint64_t> seed_counter_;
};

// The serving loop of every rank but global rank 0: receive a plan, execute it, until shutdown.
// Collective with Scheduler::run.
void follow_plans(Engine& engine, const ProcessGroups& groups);

}  // namespace rankserve::runtime
