// Gloo process groups through libtorch's c10d (Debian's libtorch needs USE_C10D_GLOO defined).
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <algorithm>

#include "core/error.h"
#include "runtime/dist/store_access.h"

namespace rankserve::runtime::detail {

std::string group_name(const GroupSpec& spec) { return fmt::format("{}[{}]", to_string(spec.kind), spec.id); }

namespace {

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const c10::intrusive_ptr<c10d::Store>& store, const GroupSpec& spec)
      : name_(group_name(spec)), members_(spec.members), timeout_(spec.timeout) {
    rank_ = static_cast<int>(std::find(members_.begin(), members_.end(), spec.global_rank) - members_.begin());
    try {
      auto options = c10d::ProcessGroupGloo::Options::create(spec.timeout);
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(spec.address));
      auto prefix = c10::make_intrusive<c10d::PrefixStore>(fmt::format("group/{}", name_), store);
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(prefix, rank_, static_cast<int>(members_.size()), options);
    } catch (const std::exception& e) {
      throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: connecting group {} (ranks {}) from address {} failed: {}",
                                                     name_, fmt::join(members_, ","), spec.address, e.what()));
    }
  }

  std::string_view name() const override { return name_; }
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  const std::vector<int>& members() const override { return members_; }

  // Gloo works on host memory: the CPU path sums float32 (the model converts half activations).
  void all_reduce_sum(const Buffer& data) override {
    RANKSERVE_CHECK(!data.on_device && data.type == ElementType::float32, "Gloo sums float32 host buffers");
    std::vector<at::Tensor> tensors{at::from_blob(data.data, {static_cast<int64_t>(data.count)}, at::kFloat)};
    run("all-reduce", [&] { return group_->allreduce(tensors); });
  }

  void all_gather(const Buffer& input, const Buffer& output) override {
    RANKSERVE_CHECK(output.bytes() == input.bytes() * members_.size(), "all_gather output size");
    std::vector<at::Tensor> inputs{bytes_of(input)};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (size_t r = 0; r < members_.size(); ++r) {
      outputs[0].push_back(at::from_blob(static_cast<std::byte*>(output.data) + r * input.bytes(),
                                         {static_cast<int64_t>(input.bytes())}, at::kByte));
    }
    run("all-gather", [&] { return group_->allgather(outputs, inputs); });
  }

  void broadcast(const Buffer& data, int root) override {
    std::vector<at::Tensor> tensors{bytes_of(data)};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    run("broadcast", [&] { return group_->broadcast(tensors, options); });
  }

  void send(const Buffer& data, int peer) override {
    std::vector<at::Tensor> tensors{bytes_of(data)};
    run("send", [&] { return group_->send(tensors, peer, kPointToPointTag); });
  }

  void recv(const Buffer& data, int peer) override {
    std::vector<at::Tensor> tensors{bytes_of(data)};
    run("receive", [&] { return group_->recv(tensors, peer, kPointToPointTag); });
  }

  void barrier() override {
    run("barrier", [&] { return group_->barrier(); });
  }

 private:
  static constexpr int kPointToPointTag = 0;  // one stream of messages per pair; calls match in order

  static at::Tensor bytes_of(const Buffer& data) {
    RANKSERVE_CHECK(!data.on_device, "Gloo works on host buffers");
    return at::from_blob(data.data, {static_cast<int64_t>(data.bytes())}, at::kByte);
  }

  template <typename Start>
  void run(std::string_view what, Start&& start) {
    try {
      start()->wait(timeout_);
    } catch (const std::exception& e) {
      throw Error(ErrorCode::runtime, fmt::format("collectives: {} on {} (ranks {}) failed: {} (a peer died or hung; see "
                                                  "the other ranks' logs)",
                                                  what, name_, fmt::join(members_, ","), e.what()));
    }
  }

  std::string name_;
  std::vector<int> members_;
  std::chrono::milliseconds timeout_;
  int rank_ = 0;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

std::unique_ptr<Communicator> make_gloo_communicator(const c10::intrusive_ptr<c10d::Store>& store, const GroupSpec& spec) {
  return std::make_unique<GlooCommunicator>(store, spec);
}

#ifndef RANKSERVE_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(const c10::intrusive_ptr<c10d::Store>&, const GroupSpec&) {
  throw Error(ErrorCode::usage, "collectives: this rankserve was built without CUDA/NCCL (rebuild with the CUDA toolkit)");
}
#endif

}  // namespace rankserve::runtime::detail
