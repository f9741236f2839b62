#include "runtime/dist/watchdog.h"

#include <fmt/format.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "runtime/dist/store_access.h"

namespace rankserve::runtime {
namespace {

constexpr const char* kAbortKey = "watchdog/abort";
constexpr int kRuntimeExitCode = 6;  // docs/exit-codes.md; the watchdog's own findings are runtime failures
std::string heartbeat_key(int rank) { return fmt::format("watchdog/hb/{}", rank); }

}  // namespace

struct Watchdog::Impl {
  c10::intrusive_ptr<c10d::Store> store;  // this thread's own connection
  c10::intrusive_ptr<c10d::Store> poster; // for post_abort from other threads
  WatchdogConfig config;
  AbortHandler on_abort;
  std::mutex mutex;
  std::mutex probe_mutex;  // find_silent_ranks and post share the poster connection
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;

  struct Seen {
    int64_t count = -1;
    std::chrono::steady_clock::time_point since;
  };

  std::vector<Seen> seen;  // rank 0: when each rank's count last changed; guarded by mutex

  void run() {
    {
      std::lock_guard lock(mutex);
      seen.assign(static_cast<size_t>(config.world_size), Seen{});
      const auto started = std::chrono::steady_clock::now();
      for (auto& s : seen) s.since = started;
    }
    while (true) {
      {
        std::unique_lock lock(mutex);
        if (wake.wait_for(lock, config.interval, [&] { return stopping; })) return;
      }
      std::string reason;
      int code = kRuntimeExitCode;
      try {
        store->add(heartbeat_key(config.rank), 1);
        if (store->check({kAbortKey})) {
          const auto bytes = store->get(kAbortKey);
          const std::string posted(bytes.begin(), bytes.end());
          const size_t newline = posted.find('\n');
          code = std::atoi(posted.substr(0, newline).c_str());
          reason = newline == std::string::npos ? posted : posted.substr(newline + 1);
          if (code <= 0) code = kRuntimeExitCode;
        } else if (config.rank == 0) {
          reason = find_silent_rank();
        }
      } catch (const std::exception& e) {
        reason = fmt::format("runtime: lost the rendezvous store (rank 0 on {} died?): {}", host(0), e.what());
      }
      if (!reason.empty()) {
        if (config.rank == 0) post(code, reason);  // also keeps the store up until the others have read it
        on_abort(code, reason);
        return;
      }
    }
  }

  std::string find_silent_rank() {
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mutex);
      seen[0].since = now;  // rank 0 is the one looking
    }
    for (int r = 1; r < config.world_size; ++r) {
      const int64_t count = store->add(heartbeat_key(r), 0);
      std::lock_guard lock(mutex);
      Seen& s = seen[static_cast<size_t>(r)];
      if (count != s.count) {
        s.count = count;
        s.since = now;
      } else if (now - s.since > config.stale_after) {
        return fmt::format("runtime: rank {} (host {}) sent no heartbeat for {} s (it died or hung)", r, host(r),
                           std::chrono::duration_cast<std::chrono::seconds>(now - s.since).count());
      }
    }
    return "";
  }

  void post(int code, const std::string& reason) {
    try {
      std::lock_guard lock(probe_mutex);
      const std::string posted = fmt::format("{}\n{}", code, reason);
      if (!poster->check({kAbortKey})) poster->set(kAbortKey, std::vector<uint8_t>(posted.begin(), posted.end()));
    } catch (const std::exception&) {
    }
    // Rank 0 hosts the store: it stays two polling periods so every rank reads the reason first.
    if (config.rank == 0) std::this_thread::sleep_for(2 * config.interval);
  }

  std::string host(int rank) const {
    return rank < static_cast<int>(config.hosts.size()) && !config.hosts[rank].empty() ? config.hosts[rank] : "?";
  }
};

namespace detail {

std::unique_ptr<Watchdog> make_watchdog(const c10::intrusive_ptr<c10d::Store>& store, const c10::intrusive_ptr<c10d::Store>& poster,
                                        const WatchdogConfig& config, Watchdog::AbortHandler on_abort) {
  auto impl = std::make_unique<Watchdog::Impl>();
  impl->store = store;
  impl->poster = poster;
  impl->config = config;
  impl->on_abort = std::move(on_abort);
  Watchdog::Impl* raw = impl.get();
  raw->thread = std::thread([raw] { raw->run(); });
  return std::make_unique<Watchdog>(std::move(impl));
}

}  // namespace detail

Watchdog::Watchdog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Watchdog::~Watchdog() { stop(); }

void Watchdog::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.get_id() != std::this_thread::get_id()) impl_->thread.join();
  else impl_->thread.detach();
}

std::vector<double> Watchdog::heartbeat_ages() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<double> ages;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& s : impl_->seen) ages.push_back(std::chrono::duration<double>(now - s.since).count());
  return ages;
}

std::string Watchdog::find_silent_ranks(std::chrono::milliseconds wait) const {
  // Its own store connection: the watchdog thread may be using the others.
  try {
    std::vector<int64_t> before(static_cast<size_t>(impl_->config.world_size));
    std::lock_guard lock(impl_->probe_mutex);
    for (int r = 0; r < impl_->config.world_size; ++r) before[static_cast<size_t>(r)] = impl_->poster->add(heartbeat_key(r), 0);
    std::this_thread::sleep_for(wait);
    std::string silent;
    for (int r = 0; r < impl_->config.world_size; ++r) {
      if (r == impl_->config.rank || impl_->poster->add(heartbeat_key(r), 0) != before[static_cast<size_t>(r)]) continue;
      silent += fmt::format("{}rank {} (host {})", silent.empty() ? "" : ", ", r, impl_->host(r));
    }
    return silent.empty() ? "" : silent + " stopped sending heartbeats";
  } catch (const std::exception& e) {
    return fmt::format("the rendezvous store is gone ({})", e.what());
  }
}

void Watchdog::post_abort(int exit_code, const std::string& reason) {
  stop();  // this rank reports its own failure; its watchdog must not race it with the posted copy
  impl_->post(exit_code, reason);
}

}  // namespace rankserve::runtime
