// `rankserve generate`: loads every rank's shard and runs one greedy generation across the ranks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "launcher/options.h"
#include "runtime/dist/communicator.h"

namespace rankserve::launcher {

// "1,2,3;4,5" -> {{1,2,3},{4,5}}: prompts separated by ';', ids by ','. Throws Error(usage) naming --prompt-ids.
std::vector<std::vector<int32_t>> parse_prompt_ids(const std::string& text);

// Every rank calls after the communicators exist. Rank 0 prints the results (text or JSON).
void run_generate(const Options& options, const runtime::ProcessGroups& groups, int global_rank);

}  // namespace rankserve::launcher
