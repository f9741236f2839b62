// Failure detection beside the collectives: every rank beats a heartbeat into the job's store and
// holds a TCP link to rank 0; a link that closes is a dead peer at once, a heartbeat that stops for
// 5 s a hung one. Any rank can post an abort reason that every rank sees. A rank whose peer died or
// hung thus stops even when no collective touches the dead peer.
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
  std::string address;                            // rank 0: where it listens for the links (its advertised address)
  std::chrono::milliseconds interval{1000};       // heartbeat and poll period
  std::chrono::milliseconds stale_after{5000};    // rank 0 declares a rank dead after this silence
  std::chrono::milliseconds link_timeout{60000};  // others: how long to wait for rank 0's link address
};

class Watchdog {
 public:
  // `on_abort(exit_code, reason)` runs on the watchdog thread, once, when this rank must stop: a
  // posted abort (with the poster's exit code), a peer's link that closed or a silent peer (rank 0),
  // rank 0's link or the store lost, or a failure handed to report(); the watchdog's own findings
  // carry the runtime code. Rank 0 has told the other ranks (and waited, briefly, for them to leave)
  // before it runs. It is expected not to return (exit).
  using AbortHandler = std::function<void(int exit_code, const std::string& reason)>;

  struct Impl;
  explicit Watchdog(std::unique_ptr<Impl> impl);
  ~Watchdog();  // stops the thread and closes the links

  // Stops the thread. Call it before the last barrier so rank 0 may leave first; the links stay open
  // (a rank that stopped watching is not a dead rank) until the destructor.
  void stop();
  // Rank 0: seconds since each global rank's heartbeat last advanced (as of the last poll); empty on
  // other ranks. Any thread.
  std::vector<double> heartbeat_ages() const;
  // After a failed collective (which names a connection, not a rank): the watchdog's verdict as soon
  // as it has one, e.g. "runtime: rank 1 (host n2) died: its link to rank 0 closed" (the watchdog
  // thread is then stopping this rank); else, after `wait`, the ranks whose heartbeat did not
  // advance, e.g. "rank 1 (host n2) stopped sending heartbeats"; "" when all beat. Any thread; never throws.
  std::string find_silent_ranks(std::chrono::milliseconds wait) const;
  // A failure this rank learned of elsewhere (its launcher saw a worker die, its own work failed):
  // the watchdog thread handles it like one of its findings (tells the others, runs on_abort). The
  // first reason wins; later ones are dropped. Returns at once; runs on_abort on the calling thread
  // when the watchdog thread has stopped. Any thread.
  void report(int exit_code, const std::string& reason);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankserve::runtime
