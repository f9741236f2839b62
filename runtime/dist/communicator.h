// Collective communicators for the world and the TP, PP and DP groups (Gloo on CPU, NCCL on GPU).
// Created by Rendezvous::create_groups; used by the engine thread of every rank.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/dist/parallel_layout.h"

namespace rankserve::runtime {

enum class Backend { gloo, nccl };

// One process group. Collectives: every member calls, in the same order, from one thread.
// Each throws Error(runtime) naming the group when a peer fails or the deadline passes.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string_view name() const = 0;  // "tp[1]": kind and group id
  virtual int rank() const = 0;               // rank within the group
  virtual int size() const = 0;
  virtual const std::vector<int>& members() const = 0;  // global ranks, in group-rank order
  // Element-wise sum over the group, in place. `data` lives in host memory.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  // Concatenates every member's `input` in group-rank order into `output` (size() x input.size()).
  virtual void all_gather(std::span<const float> input, std::span<float> output) = 0;
  // Copies root's `data` (group rank) to every member, in place.
  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  virtual void barrier() = 0;
};

struct ProcessGroups {
  std::unique_ptr<Communicator> world, tp, pp, dp;
  Communicator& get(GroupKind kind) const;
};

// A group of one process (this rank alone): collectives return their input. For single-process
// tools (benchmarks) and the groups of size 1.
std::unique_ptr<Communicator> make_self_communicator(std::string name, int global_rank);

// World, TP, PP and DP groups of a one-process job.
ProcessGroups make_self_groups();

// Start-up check: all-reduces (global rank + 1) over each group and compares with the exact sum.
// Every rank calls. Throws Error(runtime) naming the group, the expected and the received value.
void check_groups(const ProcessGroups& groups, int global_rank);

}  // namespace rankserve::runtime
