#include "launcher/spawn.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "core/plural.h"

namespace rankserve::launcher {
namespace {

struct Worker {
  int local_rank;
  int rank;
};

[[noreturn]] void exec_worker(const SpawnPlan& plan, int local_rank, const sigset_t& original_mask, int failure_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a launcher killed with -9 takes its workers along
  // Their own process group: a terminal's Ctrl-C (sent to the foreground group) reaches the launcher
  // alone, which forwards it once; a worker getting it twice would take it as "exit at once".
  ::setpgid(0, 0);
  sigprocmask(SIG_SETMASK, &original_mask, nullptr);
  const int rank = plan.first_rank + local_rank;
  auto set = [](const char* key, const std::string& value) { ::setenv(key, value.c_str(), 1); };
  set("RANKSERVE_WORKER", "1");
  set("RANK", std::to_string(rank));
  set("WORLD_SIZE", std::to_string(plan.world_size));
  set("LOCAL_RANK", std::to_string(local_rank));
  set("LOCAL_WORLD_SIZE", std::to_string(plan.num_workers));
  set("NODE_RANK", std::to_string(plan.node_rank));
  set("MASTER_ADDR", plan.head_host);
  set("MASTER_PORT", std::to_string(plan.head_port));
  set("RANKSERVE_JOB_ID", plan.job_id);
  if (!plan.node_hosts.empty()) set("RANKSERVE_NODE_HOSTS", plan.node_hosts);
  set(kFailureFdVariable, std::to_string(failure_fd));
  std::vector<char*> argv;
  std::string self = "rankserve";
  argv.push_back(self.data());
  std::vector<std::string> args = plan.args;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The binary's own path, so that ps shows the workers as rankserve (exec of /proc/self/exe names
  // them "exe"); /proc/self/exe itself when the file is gone (replaced by a rebuild, say).
  char path[4096];
  const ssize_t length = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (length > 0) {
    path[length] = '\0';
    ::execv(path, argv.data());
  }
  ::execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "rankserve: cannot start worker %d: exec /proc/self/exe: %s\n", rank, std::strerror(errno));
  ::_exit(exit_code(ErrorCode::runtime));
}

// The workers' failure reports to their launcher: one line each, written once (report_failure_to_launcher).
// Lines shorter than PIPE_BUF are written whole, so reports of several workers never interleave.
class FailurePipe {
 public:
  FailurePipe() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK) != 0) return;  // no reports then; the exit statuses still tell
    read_end_ = fds[0];
    write_end = fds[1];
    ::fcntl(read_end_, F_SETFD, FD_CLOEXEC);
  }
  ~FailurePipe() {
    close_write_end();
    if (read_end_ >= 0) ::close(read_end_);
  }
  FailurePipe(const FailurePipe&) = delete;
  FailurePipe& operator=(const FailurePipe&) = delete;

  void close_write_end() {
    if (write_end >= 0) ::close(write_end);
    write_end = -1;
  }
  // The first line reported so far (empty when none).
  std::string first_report() {
    char buffer[4096];
    for (ssize_t n; read_end_ >= 0 && (n = ::read(read_end_, buffer, sizeof(buffer))) > 0;) received_.append(buffer, n);
    return received_.substr(0, received_.find('\n'));
  }

  int write_end = -1;  // inherited by the workers (not close-on-exec)

 private:
  int read_end_ = -1;
  std::string received_;
};

constexpr int kMaxEncodedRank = 0x7fff;  // the rank takes the upper 15 bits of a positive int

void signal_all(const std::map<pid_t, Worker>& running, int signal) {
  for (const auto& [pid, worker] : running) ::kill(pid, signal);
}

// `signal` to every running worker with `value` (sigqueue: a worker reads it in si_value, spawn.h).
void queue_all(const std::map<pid_t, Worker>& running, int signal, int value) {
  for (const auto& [pid, worker] : running) ::sigqueue(pid, signal, sigval{.sival_int = value});
}

// SIGTERM to every running worker, telling each which worker failed and how (see spawn.h).
void announce_loss(const std::map<pid_t, Worker>& running, const WorkerLoss& loss) {
  if (loss.rank > kMaxEncodedRank) return signal_all(running, SIGTERM);
  queue_all(running, SIGTERM, encode_worker_loss(loss));
}

}  // namespace

void report_failure_to_launcher(const EnvMap& env, const std::string& reason) {
  const auto it = env.find(kFailureFdVariable);
  if (it == env.end()) return;
  int fd = -1;
  if (std::from_chars(it->second.data(), it->second.data() + it->second.size(), fd).ec != std::errc() || fd < 0) return;
  std::string line = reason.substr(0, PIPE_BUF - 1);
  std::replace(line.begin(), line.end(), '\n', ' ');
  line += '\n';
  [[maybe_unused]] const ssize_t written = ::write(fd, line.data(), line.size());  // best effort: the exit status tells too
}

int encode_worker_loss(const WorkerLoss& loss) { return (loss.rank & kMaxEncodedRank) << 16 | (loss.wait_status & 0xffff); }

WorkerLoss decode_worker_loss(int value) { return WorkerLoss{(value >> 16) & kMaxEncodedRank, value & 0xffff}; }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "stopped";
}

int run_workers(const SpawnPlan& plan) {
  sigset_t handled, original;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGTERM);
  sigprocmask(SIG_BLOCK, &handled, &original);

  FailurePipe failure_pipe;
  std::map<pid_t, Worker> running;
  for (int local = 0; local < plan.num_workers; ++local) {
    pid_t pid = ::fork();
    if (pid < 0) throw Error(ErrorCode::runtime, fmt::format("spawn: fork failed: {}", std::strerror(errno)));
    if (pid == 0) exec_worker(plan, local, original, failure_pipe.write_end);
    running[pid] = Worker{local, plan.first_rank + local};
  }
  failure_pipe.close_write_end();  // the workers hold it; reads see EOF once they are all gone
  log::info("spawned {} (ranks {}..{}) with store {}:{}", count_of(plan.num_workers, "worker", "workers"), plan.first_rank,
            plan.first_rank + plan.num_workers - 1, plan.head_host, plan.head_port);

  int result = 0;
  int signals_received = 0;
  bool stopping = false;
  bool signalled = false;  // stopping because the launcher got SIGTERM/SIGINT
  bool all_clean = true;   // every worker exited 0 so far
  timespec tick{1, 0};
  int seconds_since_stop = 0;
  while (!running.empty()) {
    siginfo_t info;
    int sig = sigtimedwait(&handled, &info, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      ++signals_received;
      log::warn("launcher: received {}; {} the workers", strsignal(sig), signals_received > 1 ? "killing" : "stopping");
      if (signals_received > 1) {
        signal_all(running, SIGKILL);
      } else {
        queue_all(running, sig, kForwardedSignal);
      }
      if (!stopping) {
        result = 128 + sig;
        signalled = true;
      }
      stopping = true;
    }
    if (stopping && sig < 0 && ++seconds_since_stop == plan.stop_grace_s) {
      log::warn("launcher: workers still running {} s after the stop; killing them", plan.stop_grace_s);
      signal_all(running, SIGKILL);
    }
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto it = running.find(pid);
      if (it == running.end()) continue;
      const Worker worker = it->second;
      running.erase(it);
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      all_clean = all_clean && ok;
      if (ok || stopping) {
        if (!ok) log::debug("worker rank {} {}", worker.rank, describe_status(status));
        continue;
      }
      // The first failure a worker reported names its cause: often another rank's (a follower exits
      // before the rank that failed, which waits for the others to leave first).
      const std::string cause = failure_pipe.first_report();
      log::error(
          "{}worker rank {} (local rank {}, pid {}) {}{}", cause.empty() ? "" : cause + "; ", worker.rank, worker.local_rank, pid,
          describe_status(status),
          running.empty() ? "" : "; stopping the other " + count_of(static_cast<long long>(running.size()), "worker", "workers"));
      result = WIFEXITED(status) ? WEXITSTATUS(status) : exit_code(ErrorCode::runtime);
      stopping = true;
      announce_loss(running, WorkerLoss{worker.rank, status});
    }
  }
  sigprocmask(SIG_SETMASK, &original, nullptr);
  // Workers that handle the signal (serve drains) and all exit 0 make a clean stop.
  if (signalled && all_clean) return 0;
  return result;
}

}  // namespace rankserve::launcher
