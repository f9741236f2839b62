// Placement across the data-parallel model copies: the sequences each copy runs (in join order, the
// order of its engine's slots and of the gathered results), the KV-cache tokens they hold, and the
// policy that picks the copy a queued request joins. Used by the Scheduler's plan building.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/serving/serving_request.h"

namespace rankserve::runtime {

struct PlacementLimits {
  int max_batch_size = 0;       // sequences per copy at once
  int64_t kv_cache_tokens = 0;  // KV-cache capacity per copy in tokens; 0: no limit
};

// What one copy runs now.
struct CopyLoad {
  int num_running = 0;
  int64_t kv_tokens = 0;  // the KV capacity its sequences hold (ServingRequest::kv_tokens)
};

// The copy a request needing `kv_tokens` joins: among the copies with a free slot and KV room, the one
// running the fewest sequences (the lowest dp_rank on a tie); -1 when none has both. A copy with
// nothing running takes any request, so one larger than the KV budget still runs (alone). Pure.
int choose_copy(std::span<const CopyLoad> loads, int64_t kv_tokens, const PlacementLimits& limits);

// The running sequences of every copy, and the leaves not yet sent to the engines. Mirrors each
// engine's slots: join() and leave() must reach the engines in the same order (as the next plan's
// joins and leaves). Not thread-safe: the Scheduler calls every method under its mutex.
class RunningSet {
 public:
  explicit RunningSet(int num_copies);

  int num_copies() const { return static_cast<int>(copies_.size()); }
  std::vector<CopyLoad> loads() const;
  bool any_running() const;
  int num_running() const;
  int64_t kv_tokens() const;  // all copies together

  // The copy's sequences in join order (the slot order of its results).
  const std::vector<std::shared_ptr<ServingRequest>>& copy(int dp_rank) const { return copies_[static_cast<size_t>(dp_rank)]; }
  // Every running request, copy by copy in join order (a snapshot).
  std::vector<std::shared_ptr<ServingRequest>> all() const;

  // Appends `request` to copy `dp_rank` (setting request->copy) and holds its KV tokens.
  void join(int dp_rank, std::shared_ptr<ServingRequest> request);
  // Removes the request from its copy, frees its KV tokens and records its id as a pending leave.
  // A no-op for a request that is not running.
  void leave(const ServingRequest& request);
  // The pending leaves in the order they happened, for the next plan; clears them.
  std::vector<uint64_t> take_leaves();
  bool has_pending_leaves() const { return !pending_leaves_.empty(); }

 private:
  std::vector<std::vector<std::shared_ptr<ServingRequest>>> copies_;
  std::vector<int64_t> kv_tokens_;  // per copy
  std::vector<uint64_t> pending_leaves_;
};

}  // namespace rankserve::runtime
