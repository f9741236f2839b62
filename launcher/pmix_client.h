// PMIx client for ranks started by `srun --mpi=pmix` or `mpirun`: job-level keys for the topology
// and Put/Commit/Fence/Get to publish the head's store address. Main thread only.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "launcher/env.h"
#include "launcher/topology.h"

namespace rankserve::launcher {

class PmixClient {
 public:
  // Initialises PMIx when the environment says a PMIx server launched us (PMIX_RANK is set);
  // returns nullptr otherwise. Throws Error(rendezvous) when PMIx_Init fails.
  static std::unique_ptr<PmixClient> connect_if_launched(const EnvMap& env);
  ~PmixClient();

  const PmixInfo& info() const { return info_; }

  // Publishes `value` under `key` for this rank; visible to others after fence().
  void put(const std::string& key, const std::string& value);
  // Commit + fence over the whole job, collecting data. Every rank calls. Throws Error(rendezvous) at the deadline.
  void fence(std::chrono::seconds timeout);
  // Reads `key` published by `rank`. Throws Error(rendezvous) when absent.
  std::string get(int rank, const std::string& key, std::chrono::seconds timeout);

 private:
  PmixClient() = default;
  PmixInfo info_;
};

}  // namespace rankserve::launcher
