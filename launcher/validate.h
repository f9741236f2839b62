// Checks options against the topology before anything starts (no network, no collective).
// Reports every problem at once; main() prints them and exits with the most basic category's code.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "launcher/options.h"
#include "launcher/topology.h"

namespace rankserve::launcher {

struct Problem {
  ErrorCode code;
  std::string message;
};

// `resolves(host)` says whether a host name resolves (injected so tests need no DNS).
std::vector<Problem> validate(const Options& options, const Topology& topology, int num_visible_gpus,
                              const std::function<bool(const std::string&)>& resolves);

// The topology problem when tp_size x pp_size (both >= 1) does not divide the world, "" when it does;
// `world_size_from` says where the world size came from ("SLURM_NTASKS").
std::string layout_problem(int tp_size, int pp_size, int world_size, const std::string& world_size_from);

// The checks of the options alone (a subset of validate's), for before the topology is known: main()
// runs them before it downloads a hub model.
std::vector<Problem> validate_options(const Options& options);

// A warning for serve to log, "" for none: random weights served under a name shaped like a hub model's
// (--model-path random/125M --model-name facebook/opt-125m), which clients would take for that model.
std::string random_weights_warning(const Options& options);

// Throws one Error holding every problem, one per line, with the lowest (most basic) category.
void throw_if_any(const std::vector<Problem>& problems);

}  // namespace rankserve::launcher
