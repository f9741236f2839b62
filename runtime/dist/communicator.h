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

// The element types of a Buffer.
enum class ElementType { float32, bfloat16, float16, byte };

// `count` elements of `type` at `data`: host memory, or (on_device) memory of this rank's CUDA device
// (the one its group was created for). Tensor-free, so the model passes its tensors' storage.
struct Buffer {
  void* data = nullptr;
  size_t count = 0;
  ElementType type = ElementType::float32;
  bool on_device = false;
  size_t bytes() const;
};

// One process group. Collectives: every member calls, in the same order, from one thread.
// Each throws Error(runtime) naming the group when a peer fails or the deadline passes.
// Host buffers work on every backend; device buffers need NCCL (Gloo and a group of one refuse
// them with a logic error). NCCL runs a device buffer's collective in place on its storage, ordered
// with torch's compute stream, and returns once it completed (nccl_communicator.cpp says how).
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string_view name() const = 0;  // "tp[1]": kind and group id
  virtual int rank() const = 0;               // rank within the group
  virtual int size() const = 0;
  virtual const std::vector<int>& members() const = 0;  // global ranks, in group-rank order
  // Element-wise sum over the group, in place. Gloo sums float32 only; NCCL also bf16 and fp16.
  virtual void all_reduce_sum(const Buffer& data) = 0;
  // Concatenates every member's `input` in group-rank order into `output` (size() x input.count).
  virtual void all_gather(const Buffer& input, const Buffer& output) = 0;
  // Copies root's `data` (group rank) to every member, in place.
  virtual void broadcast(const Buffer& data, int root) = 0;
  // Point-to-point: `peer` is a group rank that calls recv (send) with a buffer of the same size.
  // Only the two ranks take part; pairs of calls between the same two ranks match in order.
  virtual void send(const Buffer& data, int peer) = 0;
  virtual void recv(const Buffer& data, int peer) = 0;
  virtual void barrier() = 0;

  // Host-memory forms of the above.
  void all_reduce_sum(std::span<float> data) { all_reduce_sum(Buffer{data.data(), data.size(), ElementType::float32, false}); }
  void all_gather(std::span<const float> input, std::span<float> output) {
    all_gather(Buffer{const_cast<float*>(input.data()), input.size(), ElementType::float32, false},
               Buffer{output.data(), output.size(), ElementType::float32, false});
  }
  void broadcast(std::span<std::byte> data, int root) {
    broadcast(Buffer{data.data(), data.size(), ElementType::byte, false}, root);
  }
};

struct ProcessGroups {
  std::unique_ptr<Communicator> world, tp, pp, dp;
  std::string device = "cpu";  // this rank's device, as the rendezvous recorded it: "cpu" or "cuda:N"
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
