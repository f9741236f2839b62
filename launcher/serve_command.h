// `rankserve serve`: every rank loads its shard; global rank 0 runs the HTTP server and the scheduler,
// the others follow its step plans. SIGTERM/SIGINT drain (readiness off, in-flight requests finish
// within --shutdown-timeout), a second signal exits at once.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "launcher/options.h"
#include "launcher/topology.h"
#include "runtime/dist/communicator.h"

namespace rankserve::launcher {

// Lets the watchdog's abort path (another thread) fail rank 0's in-flight requests with the reason
// before the process exits. Set while serving; empty otherwise.
struct FailureHook {
  std::function<void(const std::string& reason)> fail_requests;
  std::function<std::vector<double>()> heartbeat_ages;  // set by main: seconds per global rank (rank 0's watchdog)
  std::function<std::string()> find_silent_ranks;      // set by main: names the ranks that stopped beating ("" none)
};

// Every rank calls after the communicators exist; returns after the shutdown plan (every rank at the
// same iteration). Throws Error(usage) for ports in use (rank 0), Error(load), Error(runtime).
void run_serve(const Options& options, const runtime::ProcessGroups& groups, const Topology& topology, FailureHook& hook);

}  // namespace rankserve::launcher
