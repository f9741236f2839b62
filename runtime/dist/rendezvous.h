// Peers of one job find each other through a TCP store on the head (c10d::TCPStore), then build
// the communicators. Every phase has a deadline; on expiry the error names the missing ranks.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dist/communicator.h"
#include "runtime/dist/parallel_layout.h"
#include "runtime/dist/watchdog.h"

namespace rankserve::runtime {

struct RendezvousConfig {
  int rank = 0;
  int world_size = 1;
  std::string job_id;      // the store admits only peers with the same id
  std::string store_host;  // head address
  int store_port = 0;
  bool serve_store = false;                 // true on the rank that hosts the store (global rank 0, unless an agent does)
  std::string hostname;                     // this rank's host, for tables and messages
  std::string advertise_address;            // where peers reach this rank (Gloo binds to it)
  std::string device;                       // "cpu" or "cuda:N"
  std::vector<std::string> expected_hosts;  // by global rank, "" unknown: named when a rank is missing
  std::chrono::milliseconds timeout{300'000};
};

struct PeerInfo {
  int rank = 0;
  std::string hostname;
  std::string address;
  int pid = 0;
  std::string device;
};

class Rendezvous {
 public:
  // Connects to (or serves) the store and checks the job id. Throws Error(rendezvous) when the store
  // cannot be reached or served before the deadline, or belongs to another job.
  explicit Rendezvous(const RendezvousConfig& config);
  ~Rendezvous();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  // Every rank calls once. Returns every peer by rank once all arrived; throws Error(rendezvous)
  // naming the ranks (and their expected hosts) that did not arrive within the deadline.
  std::vector<PeerInfo> wait_for_peers();

  // Every rank calls, after wait_for_peers. `device` is the local CUDA device for nccl, unused for gloo.
  ProcessGroups create_groups(const ParallelLayout& layout, Backend backend);

  // Every rank calls, after wait_for_peers: starts this rank's heartbeat thread on new store
  // connections, with its link to rank 0 (which listens on its advertised address; see watchdog.h).
  std::unique_ptr<Watchdog> start_watchdog(Watchdog::AbortHandler on_abort);

  const RendezvousConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rankserve::runtime
