// `rankserve plan`: the layout a model needs on --nodes x --gpus of --gpu-memory, from its config alone
// (launcher/layout_plan.h), printed as a table or JSON with the sbatch line that serves it. Called by main
// before any launcher is looked at: it starts nothing and reads no weights.
#pragma once

#include "launcher/options.h"

namespace rankserve::launcher {

// Validates the options as serve does, prints the plan on stdout and returns 0 when it fits. Throws
// Error(usage|topology) for bad options or --tp/--pp, Error(load) for an unreadable config, and
// Error(topology) naming the shortfall and what would fit when it does not fit (after printing it).
int run_plan(const ParsedOptions& parsed);

}  // namespace rankserve::launcher
