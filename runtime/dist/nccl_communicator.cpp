// NCCL process groups (GPU). The group leader creates the unique id and shares it through the
// job's store (as nccl-tests does through MPI); each rank uses its local rank's selected device.
// Non-blocking communicators, so every wait has a deadline and ends in ncclCommAbort.
#include <cuda_runtime.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "runtime/core/error.h"
#include "runtime/dist/store_access.h"

namespace rankserve::runtime::detail {
namespace {

using Clock = std::chrono::steady_clock;

int device_index(const std::string& device) {
  if (device.rfind("cuda:", 0) != 0) {
    throw Error(ErrorCode::usage, fmt::format("collectives: NCCL needs a CUDA device, got '{}'", device));
  }
  return std::stoi(device.substr(5));
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
    if (buffer_) cudaFree(buffer_);
    if (stream_) cudaStreamDestroy(stream_);
    if (comm_) ncclCommDestroy(comm_);
  }

  std::string_view name() const override { return name_; }
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  const std::vector<int>& members() const override { return members_; }

  void all_reduce_sum(std::span<float> data) override {
    void* device = staging(data.size_bytes());
    check_cuda(cudaMemcpyAsync(device, data.data(), data.size_bytes(), cudaMemcpyHostToDevice, stream_), "copy to device");
    check_nccl(ncclAllReduce(device, device, data.size(), ncclFloat, ncclSum, comm_, stream_), "ncclAllReduce");
    check_cuda(cudaMemcpyAsync(data.data(), device, data.size_bytes(), cudaMemcpyDeviceToHost, stream_), "copy to host");
    wait_for_stream("all-reduce");
  }

  void all_gather(std::span<const float> input, std::span<float> output) override {
    RANKSERVE_CHECK(output.size() == input.size() * members_.size(), "all_gather output size");
    auto* device = static_cast<char*>(staging(output.size_bytes()));
    void* mine = device + static_cast<size_t>(rank_) * input.size_bytes();
    check_cuda(cudaMemcpyAsync(mine, input.data(), input.size_bytes(), cudaMemcpyHostToDevice, stream_), "copy to device");
    check_nccl(ncclAllGather(mine, device, input.size(), ncclFloat, comm_, stream_), "ncclAllGather");
    check_cuda(cudaMemcpyAsync(output.data(), device, output.size_bytes(), cudaMemcpyDeviceToHost, stream_), "copy to host");
    wait_for_stream("all-gather");
  }

  void broadcast(std::span<std::byte> data, int root) override {
    void* device = staging(data.size_bytes());
    check_cuda(cudaMemcpyAsync(device, data.data(), data.size_bytes(), cudaMemcpyHostToDevice, stream_), "copy to device");
    check_nccl(ncclBroadcast(device, device, data.size_bytes(), ncclUint8, root, comm_, stream_), "ncclBroadcast");
    check_cuda(cudaMemcpyAsync(data.data(), device, data.size_bytes(), cudaMemcpyDeviceToHost, stream_), "copy to host");
    wait_for_stream("broadcast");
  }

  void barrier() override {
    float one = 1;
    all_reduce_sum(std::span<float>(&one, 1));
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
    const auto deadline = Clock::now() + timeout_;
    while (true) {
      cudaError_t status = cudaStreamQuery(stream_);
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
  cudaStream_t stream_ = nullptr;
  void* buffer_ = nullptr;
  size_t buffer_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const c10::intrusive_ptr<c10d::Store>& store, const GroupSpec& spec) {
  return std::make_unique<NcclCommunicator>(store, spec);
}

}  // namespace rankserve::runtime::detail
