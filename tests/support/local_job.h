// A job of several ranks inside one test process: each rank a thread with its own rendezvous and its
// world, TP, PP and DP groups on Gloo over 127.0.0.1. For unit tests of code that is collective
// across ranks (point-to-point, step plans).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dist/communicator.h"
#include "runtime/dist/parallel_layout.h"
#include "runtime/dist/rendezvous.h"

namespace rankserve::testing {

class LocalJob {
 public:
  // Meets every rank of `layout` (one thread each) and builds its groups; rethrows the first rank's
  // failure. Every wait has a 60 s deadline, against hangs only.
  explicit LocalJob(const runtime::ParallelLayout& layout);
  ~LocalJob();  // the groups go before the store rank 0's rendezvous serves
  LocalJob(const LocalJob&) = delete;
  LocalJob& operator=(const LocalJob&) = delete;

  int world_size() const { return static_cast<int>(ranks_.size()); }
  runtime::ProcessGroups& groups(int rank) { return ranks_[static_cast<size_t>(rank)].groups; }

  // Runs `work(rank)` on one thread per rank at once, waits for all of them and rethrows the first
  // failure (by rank), so a rank that fails never leaves another waiting past its deadline unseen.
  void run_on_every_rank(const std::function<void(int rank)>& work);

 private:
  struct Rank {
    std::unique_ptr<runtime::Rendezvous> rendezvous;
    runtime::ProcessGroups groups;
  };
  std::vector<Rank> ranks_;
};

}  // namespace rankserve::testing
