#include "runtime/serving/placement.h"

#include <algorithm>
#include <numeric>

namespace rankserve::runtime {

int choose_copy(std::span<const CopyLoad> loads, int64_t kv_tokens, const PlacementLimits& limits) {
  int best = -1;
  for (size_t c = 0; c < loads.size(); ++c) {
    const CopyLoad& load = loads[c];
    if (load.num_running >= limits.max_batch_size) continue;
    if (limits.kv_cache_tokens > 0 && load.num_running > 0 && load.kv_tokens + kv_tokens > limits.kv_cache_tokens) continue;
    if (best < 0 || load.num_running < loads[static_cast<size_t>(best)].num_running) best = static_cast<int>(c);
  }
  return best;
}

RunningSet::RunningSet(int num_copies)
    : copies_(static_cast<size_t>(num_copies)), kv_tokens_(static_cast<size_t>(num_copies), 0) {}

std::vector<CopyLoad> RunningSet::loads() const {
  std::vector<CopyLoad> loads(copies_.size());
  for (size_t c = 0; c < copies_.size(); ++c) loads[c] = {static_cast<int>(copies_[c].size()), kv_tokens_[c]};
  return loads;
}

bool RunningSet::any_running() const {
  return std::any_of(copies_.begin(), copies_.end(), [](const auto& copy) { return !copy.empty(); });
}

int RunningSet::num_running() const {
  int n = 0;
  for (const auto& copy : copies_) n += static_cast<int>(copy.size());
  return n;
}

int64_t RunningSet::kv_tokens() const { return std::accumulate(kv_tokens_.begin(), kv_tokens_.end(), int64_t{0}); }

std::vector<std::shared_ptr<ServingRequest>> RunningSet::all() const {
  std::vector<std::shared_ptr<ServingRequest>> all;
  for (const auto& copy : copies_) all.insert(all.end(), copy.begin(), copy.end());
  return all;
}

void RunningSet::join(int dp_rank, std::shared_ptr<ServingRequest> request) {
  const auto c = static_cast<size_t>(dp_rank);
  request->copy = dp_rank;
  kv_tokens_[c] += request->kv_tokens();
  copies_[c].push_back(std::move(request));
}

void RunningSet::leave(const ServingRequest& request) {
  if (request.copy < 0 || request.copy >= num_copies()) return;
  const auto c = static_cast<size_t>(request.copy);
  auto& copy = copies_[c];
  const auto it = std::find_if(copy.begin(), copy.end(), [&](const auto& r) { return r.get() == &request; });
  if (it == copy.end()) return;
  copy.erase(it);
  kv_tokens_[c] -= request.kv_tokens();
  pending_leaves_.push_back(request.id);
}

std::vector<uint64_t> RunningSet::take_leaves() {
  std::vector<uint64_t> leaves = std::move(pending_leaves_);
  pending_leaves_.clear();
  return leaves;
}

}  // namespace rankserve::runtime
