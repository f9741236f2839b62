// NCCL process groups (GPU). The group leader creates the unique id and shares it through the
// job's store (as nccl-tests does through MPI); each rank uses its local rank's selected device.
// Non-blocking communicators, so every wait has a deadline and ends in ncclCommAbort.
//
// Streams (contract). Host buffers go through a device staging buffer on this communicator's own
// non-blocking stream, as before. Device buffers are used in place and their collectives are
// enqueued on the legacy default stream (stream 0): that is torch's compute stream here, because
// rankserve never installs a stream guard and PyTorch's default CUDA stream is the legacy default
// stream. Enqueueing there orders the collective after the kernels that produced the buffer and
// before those that read it, with no events and no dependency on libtorch_cuda (which a CPU-only
// libtorch build lacks). Each call then waits, polling an event with the group's deadline, so a
// dead peer ends in ncclCommAbort and Error(runtime) instead of a hang at the next host copy.
// The price is one host synchronisation per collective; CUDA-graph capture would have to replace
// this wait with a watchdog. UNRUN: this file has not run on a GPU yet (see docs/runtime.md).
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "runtime/dist/store_access.h"

namespace rankserve::runtime::detail {
namespace {

using Clock = std::chrono::steady_clock;

// torch's compute stream while rankserve sets no stream guard: the legacy default stream (see above).
const cudaStream_t kComputeStream = cudaStreamLegacy;

int device_index(const std::string& device) {
  if (device.rfind("cuda:", 0) != 0) {
    throw Error(ErrorCode::usage, fmt::format("collectives: NCCL needs a CUDA device, got '{}'", device));
  }
  return std::stoi(device.substr(5));
}

ncclDataType_t nccl_type(ElementType type) {
  switch (type) {
    case ElementType::float32: return ncclFloat;
    case ElementType::bfloat16: return ncclBfloat16;
    case ElementType::float16: return ncclHalf;
    case ElementType::byte: return ncclUint8;
  }
  return ncclUint8;
}

void check_cuda(cudaError_t status, std::string_view what) {
  if (status != cudaSuccess) {
    throw Error(ErrorCode::runtime, fmt::format("collectives: {} failed: {}", what, cudaGetErrorString(status)));
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const c10::intrusive_ptr<c10d::Store>& store, const GroupSpec& spec)
      : name_(group_name(spec)), members_(spec.members), timeout_(spec.timeout) {
    rank_ = static_cast<int>(std::find(members_.begin(), members_.end(), spec.global_rank) - members_.begin());
    check_cuda(cudaSetDevice(device_index(spec.device)), "cudaSetDevice");
    ncclUniqueId id;
    const std::string key = fmt::format("nccl/{}", name_);
    try {
      if (rank_ == 0) {
        check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
        const auto* bytes = reinterpret_cast<const uint8_t*>(&id);
        store->set(key, std::vector<uint8_t>(bytes, bytes + sizeof(id)));
      } else {
        store->wait({key}, timeout_);
        std::vector<uint8_t> bytes = store->get(key);
        if (bytes.size() != sizeof(id)) throw Error(ErrorCode::rendezvous, "rendezvous: malformed NCCL unique id");
        std::copy(bytes.begin(), bytes.end(), reinterpret_cast<uint8_t*>(&id));
      }
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(ErrorCode::rendezvous,
                  fmt::format("rendezvous: NCCL id for {} not shared within the deadline: {}", name_, e.what()));
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    check_nccl(ncclCommInitRankConfig(&comm_, size(), id, rank_, &config), "ncclCommInitRankConfig");
    wait_for_comm("ncclCommInitRank", Clock::now() + timeout_);
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }

  ~NcclCommunicator() override {
    if (event_) cudaEventDestroy(event_);
    if (buffer_) cudaFree(buffer_);
    if (stream_) cudaStreamDestroy(stream_);
    if (comm_) ncclCommDestroy(comm_);
  }

  std::string_view name() const override { return name_; }
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  const std::vector<int>& members() const override { return members_; }

  void all_reduce_sum(const Buffer& data) override {
    if (data.on_device) {
      check_nccl(ncclAllReduce(data.data, data.data, data.count, nccl_type(data.type), ncclSum, comm_, kComputeStream),
                 "ncclAllReduce");
      return wait_for_device("all-reduce");
    }
    RANKSERVE_CHECK(data.type == ElementType::float32, "host all-reduce sums float32");
    void* device = staging(data.bytes());
    check_cuda(cudaMemcpyAsync(device, data.data, data.bytes(), cudaMemcpyHostToDevice, stream_), "copy to device");
    check_nccl(ncclAllReduce(device, device, data.count, ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
    check_cuda(cudaMemcpyAsync(data.data, device, data.bytes(), cudaMemcpyDeviceToHost, stream_), "copy to host");
    wait_for_stream("all-reduce");
  }

  void all_gather(const Buffer& input, const Buffer& output) override {
    RANKSERVE_CHECK(output.bytes() == input.bytes() * members_.size(), "all_gather output size");
    RANKSERVE_CHECK(input.on_device == output.on_device, "all_gather buffers in one memory");
    if (input.on_device) {
      check_nccl(ncclAllGather(input.data, output.data, input.bytes(), ncclUint8, comm_, kComputeStream), "ncclAllGather");
      return wait_for_device("all-gather");
    }
    auto* device = static_cast<char*>(staging(output.bytes()));
    void* mine = device + static_cast<size_t>(rank_) * input.bytes();
    check_cuda(cudaMemcpyAsync(mine, input.data, input.bytes(), cudaMemcpyHostToDevice, stream_), "copy to device");
    check_nccl(ncclAllGather(mine, device, input.bytes(), ncclUint8, comm_, stream_), "ncclAllGather");
    check_cuda(cudaMemcpyAsync(output.data, device, output.bytes(), cudaMemcpyDeviceToHost, stream_), "copy to host");
    wait_for_stream("all-gather");
  }

  void broadcast(const Buffer& data, int root) override {
    if (data.on_device) {
      check_nccl(ncclBroadcast(data.data, data.data, data.bytes(), ncclUint8, root, comm_, kComputeStream), "ncclBroadcast");
      return wait_for_device("broadcast");
    }
    void* device = staging(data.bytes());
    check_cuda(cudaMemcpyAsync(device, data.data, data.bytes(), cudaMemcpyHostToDevice, stream_), "copy to device");
    check_nccl(ncclBroadcast(device, device, data.bytes(), ncclUint8, root, comm_, stream_), "ncclBroadcast");
    check_cuda(cudaMemcpyAsync(data.data, device, data.bytes(), cudaMemcpyDeviceToHost, stream_), "copy to host");
    wait_for_stream("broadcast");
  }

  void send(const Buffer& data, int peer) override {
    if (data.on_device) {
      check_nccl(ncclSend(data.data, data.bytes(), ncclUint8, peer, comm_, kComputeStream), "ncclSend");
      return wait_for_device("send");
    }
    void* device = staging(data.bytes());
    check_cuda(cudaMemcpyAsync(device, data.data, data.bytes(), cudaMemcpyHostToDevice, stream_), "copy to device");
    check_nccl(ncclSend(device, data.bytes(), ncclUint8, peer, comm_, stream_), "ncclSend");
    wait_for_stream("send");
  }

  void recv(const Buffer& data, int peer) override {
    if (data.on_device) {
      check_nccl(ncclRecv(data.data, data.bytes(), ncclUint8, peer, comm_, kComputeStream), "ncclRecv");
      return wait_for_device("receive");
    }
    void* device = staging(data.bytes());
    check_nccl(ncclRecv(device, data.bytes(), ncclUint8, peer, comm_, stream_), "ncclRecv");
    check_cuda(cudaMemcpyAsync(data.data, device, data.bytes(), cudaMemcpyDeviceToHost, stream_), "copy to host");
    wait_for_stream("receive");
  }

  void barrier() override {
    float one = 1;
    all_reduce_sum(Buffer{&one, 1, ElementType::float32, false});
  }

 private:
  void check_nccl(ncclResult_t status, std::string_view what) {
    if (status != ncclSuccess && status != ncclInProgress) {
      throw Error(ErrorCode::runtime, fmt::format("collectives: {} on {} failed: {}", what, name_, ncclGetErrorString(status)));
    }
  }

  void* staging(size_t bytes) {
    if (bytes > buffer_bytes_) {
      if (buffer_) check_cuda(cudaFree(buffer_), "cudaFree");
      buffer_ = nullptr;
      check_cuda(cudaMalloc(&buffer_, bytes), "cudaMalloc");
      buffer_bytes_ = bytes;
    }
    return buffer_;
  }

  // Polls the communicator until it leaves ncclInProgress; aborts it at the deadline.
  void wait_for_comm(std::string_view what, Clock::time_point deadline) {
    ncclResult_t state = ncclInProgress;
    while (true) {
      ncclCommGetAsyncError(comm_, &state);
      if (state != ncclInProgress) break;
      if (Clock::now() > deadline) abort_with(what, "deadline passed");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (state != ncclSuccess) abort_with(what, ncclGetErrorString(state));
  }

  void wait_for_stream(std::string_view what) {
    poll_until_done(what, [this] { return cudaStreamQuery(stream_); });
  }

  // A collective on the compute stream: waits for an event recorded after it (not for the whole
  // stream, whose later work the caller has not enqueued yet anyway).
  void wait_for_device(std::string_view what) {
    if (!event_) check_cuda(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(event_, kComputeStream), "cudaEventRecord");
    poll_until_done(what, [this] { return cudaEventQuery(event_); });
  }

  template <typename Query>
  void poll_until_done(std::string_view what, Query&& query) {
    const auto deadline = Clock::now() + timeout_;
    while (true) {
      cudaError_t status = query();
      if (status == cudaSuccess) return;
      if (status != cudaErrorNotReady) check_cuda(status, what);
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) abort_with(what, ncclGetErrorString(state));
      if (Clock::now() > deadline) abort_with(what, "deadline passed (a peer died or hung)");
      std::this_thread::yield();
    }
  }

  [[noreturn]] void abort_with(std::string_view what, std::string_view why) {
    ncclCommAbort(comm_);
    comm_ = nullptr;
    throw Error(ErrorCode::runtime,
                fmt::format("collectives: {} on {} (ranks {}) failed: {}", what, name_, fmt::join(members_, ","), why));
  }

  std::string name_;
  std::vector<int> members_;
  std::chrono::milliseconds timeout_;
  int rank_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;  // host-buffer collectives
  cudaEvent_t event_ = nullptr;    // completion of a device-buffer collective on kComputeStream
  void* buffer_ = nullptr;
  size_t buffer_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const c10::intrusive_ptr<c10d::Store>& store, const GroupSpec& spec) {
  return std::make_unique<NcclCommunicator>(store, spec);
}

}  // namespace rankserve::runtime::detail
