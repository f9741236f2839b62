// Local worker supervision: one launcher per node forks one worker per local rank, forwards
// SIGINT/SIGTERM, and when one worker fails stops the others and exits with that worker's cause.
#pragma once

#include <string>
#include <vector>

#include "launcher/env.h"

namespace rankserve::launcher {

struct SpawnPlan {
  int num_workers = 1;  // local ranks on this node
  int first_rank = 0;   // global rank of local rank 0
  int world_size = 1;
  int node_rank = 0;
  std::string head_host;  // rendezvous store, passed as MASTER_ADDR / MASTER_PORT
  int head_port = 0;
  std::string job_id;
  // Every node's host, comma-separated, where the launcher knows them all (Kubernetes): passed as
  // RANKSERVE_NODE_HOSTS so that the workers name the hosts of other ranks; empty otherwise.
  std::string node_hosts;
  std::vector<std::string> args;  // the launcher's own arguments, passed on unchanged
  int stop_grace_s = 5;           // after forwarding SIGTERM/SIGINT, SIGKILL the workers still running after this
};

// When a worker fails, the launcher stops the others with a SIGTERM that carries the failed worker
// (sigqueue: si_code SI_QUEUE, si_pid the launcher, si_value.sival_int the encoded loss), so that a
// worker tells it from an operator's SIGTERM: serve stops at once, naming the rank, instead of draining.
struct WorkerLoss {
  int rank = 0;         // global rank, 0..32767 (larger ones are sent as a plain SIGTERM)
  int wait_status = 0;  // as waitpid returned it
};
int encode_worker_loss(const WorkerLoss& loss);  // >= 0
WorkerLoss decode_worker_loss(int value);

// The launcher forwards an operator's first SIGTERM/SIGINT the same way, with this value: a worker that also got the
// signal itself (Slurm signals every process of a step, not only the launcher) counts the two as one.
inline constexpr int kForwardedSignal = -1;

// A spawned worker's failure, told to its launcher (through a pipe whose descriptor the launcher puts
// in RANKSERVE_FAILURE_FD) before the worker exits, so that the launcher's error names the cause and
// not only the first worker to exit. Does nothing when the variable is absent. Any thread; once.
inline constexpr const char* kFailureFdVariable = "RANKSERVE_FAILURE_FD";
void report_failure_to_launcher(const EnvMap& env, const std::string& reason);

// "exited with code 6", "was killed by signal 9 (Killed)".
std::string describe_status(int wait_status);

// Runs the workers to completion; returns the launcher's exit status: 0 when all exit 0 (also after a
// forwarded SIGTERM/SIGINT that they handled), 128 + signal when a forwarded signal ended them, else
// the first failing worker's status (a signal death maps to the runtime code). Main thread only.
int run_workers(const SpawnPlan& plan);

}  // namespace rankserve::launcher
