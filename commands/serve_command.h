// `rankserve serve`: every rank loads its shard; global rank 0 runs the HTTP server and the scheduler,
// the others follow its step plans. SIGTERM/SIGINT drain (readiness off, in-flight requests finish
// within --shutdown-timeout), a second signal exits at once. The spawning launcher's SIGTERM after a
// worker failed (spawn.h) stops every rank at once instead: rank 0 fails its requests naming the rank.
#pragma once

#include <string>

#include "launcher/failure_hook.h"
#include "launcher/options.h"
#include "launcher/topology.h"
#include "runtime/dist/communicator.h"
#include "runtime/model/model_config.h"

namespace rankserve::launcher {

// Sequences running at once per model copy: --max-batch-size, or the contract's (OPT 256, GPT 128).
int max_batch_size_of(const Options& options, const runtime::ModelConfig& config);

// Every rank calls after the communicators exist; returns after the shutdown plan (every rank at the
// same iteration). Throws Error(usage) for ports in use (rank 0), Error(load), Error(runtime).
void run_serve(const Options& options, const runtime::ProcessGroups& groups, const Topology& topology, FailureHook& hook);

}  // namespace rankserve::launcher
