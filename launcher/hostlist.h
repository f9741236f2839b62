// Slurm's compressed list syntaxes: hostlists ("gpu-a[01-04,07],gpu-b12") and task counts
// ("2(x3),1"). Pure functions; used by the Slurm topology source and its tests.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rankserve::launcher {

// Expands a hostlist into host names in order. Supports several bracket groups per name
// ("rack[1-2]-n[01-02]"), zero-padded ranges and single numbers. Throws Error(usage) naming
// `variable` when the text is malformed.
std::vector<std::string> expand_hostlist(std::string_view text, std::string_view variable);

// Expands a Slurm task-count list ("2(x3),1" -> {2,2,2,1}). Throws Error(usage) naming `variable`.
std::vector<int> expand_tasks_per_node(std::string_view text, std::string_view variable);

}  // namespace rankserve::launcher
