// Internal to rankserve_dist: the c10d store handle shared by the rendezvous and the backends.
// Includes libtorch; never include it from a public header.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dist/communicator.h"
#include "runtime/dist/watchdog.h"

namespace rankserve::runtime::detail {

struct GroupSpec {
  GroupKind kind;
  int id = 0;                // index among the groups of that kind
  std::vector<int> members;  // global ranks
  int global_rank = 0;
  std::chrono::milliseconds timeout;
  std::string address;  // this rank's advertised address
  std::string device;   // "cpu" or "cuda:N"
};

std::string group_name(const GroupSpec& spec);

// Each takes the job-scoped store; only members call, all members with the same spec.
std::unique_ptr<Communicator> make_gloo_communicator(const c10::intrusive_ptr<c10d::Store>& store, const GroupSpec& spec);
std::unique_ptr<Communicator> make_nccl_communicator(const c10::intrusive_ptr<c10d::Store>& store, const GroupSpec& spec);

// Starts the watchdog thread on `store` (its own connection); `poster` serves find_silent_ranks on other threads.
std::unique_ptr<Watchdog> make_watchdog(const c10::intrusive_ptr<c10d::Store>& store,
                                        const c10::intrusive_ptr<c10d::Store>& poster, const WatchdogConfig& config,
                                        Watchdog::AbortHandler on_abort);

}  // namespace rankserve::runtime::detail
