// Failure detection beside the collectives: every rank beats a heartbeat into the job's store;
// rank 0 watches them, and any rank can post an abort reason that every rank sees within a few
// seconds. A rank whose peer died or hung thus stops even when no collective touches the dead peer.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace rankserve::runtime {

struct WatchdogConfig {
  int rank = 0;
  int world_size = 1;
  std::vector<std::string> hosts;                 // by rank, for messages
  std::chrono::milliseconds interval{1000};       // heartbeat and poll period
  std::chrono::milliseconds stale_after{5000};    // rank 0 declares a rank dead after this silence
};

class Watchdog {
 public:
  // `on_abort(exit_code, reason)` runs on the watchdog thread when this rank must stop: a posted
  // abort (with the poster's exit code), a silent peer (rank 0), or the store lost (rank 0 gone);
  // the last two carry the runtime code. It is expected not to return (exit).
  using AbortHandler = std::function<void(int exit_code, const std::string& reason)>;

  struct Impl;
  explicit Watchdog(std::unique_ptr<Impl> impl);
  ~Watchdog();  // stops the thread; call stop() before the last barrier so rank 0 may leave first

  void stop();
  // Rank 0: seconds since each global rank's heartbeat last advanced (as of the last poll); empty on
  // other ranks. Any thread.
  std::vector<double> heartbeat_ages() const;
  // After a failed collective: waits `wait` (a few heartbeat intervals) and names the ranks whose
  // heartbeat did not advance, e.g. "rank 1 (host n2) stopped sending heartbeats"; "" when all beat.
  // Any thread; never throws.
  std::string find_silent_ranks(std::chrono::milliseconds wait) const;
  // Stops this rank's watchdog and tells every other rank to stop with `exit_code` and `reason`
  // (this rank's own failure, which it reports itself). Best effort, never throws.
  void post_abort(int exit_code, const std::string& reason);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankserve::runtime
