#include "runtime/dist/watchdog.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "runtime/dist/store_access.h"

namespace rankserve::runtime {
namespace {

constexpr const char* kAbortKey = "watchdog/abort";
constexpr const char* kLinkKey = "watchdog/link";  // rank 0's "<address> <port>" for the links
constexpr int kRuntimeExitCode = 6;                // docs/exit-codes.md; the watchdog's own findings are runtime failures
std::string heartbeat_key(int rank) { return fmt::format("watchdog/hb/{}", rank); }

// The links carry one text line at a time: a rank sends "rank <r>" once connected, and either side
// sends "abort <code> <reason>" when it stops the job. A link that closes without an abort line is
// a rank that died (the kernel closes a killed process's sockets at once).
std::string abort_line(int code, std::string reason) {
  std::replace(reason.begin(), reason.end(), '\n', ' ');
  return fmt::format("abort {} {}\n", code, reason);
}

addrinfo* resolve(const std::string& host, const std::string& port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error(fmt::format("cannot resolve '{}': {}", host, ::gai_strerror(rc)));
  }
  return found;
}

// A listening socket on `address` (a free port) and the port chosen.
std::pair<int, int> listen_on(const std::string& address) {
  addrinfo* found = resolve(address, "0", true);
  const int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  const bool ok = fd >= 0 && ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0;
  const std::string why = ok ? "" : std::strerror(errno);
  ::freeaddrinfo(found);
  if (!ok) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error(fmt::format("cannot listen on {}: {}", address, why));
  }
  const int port = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                                               : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return {fd, port};
}

int connect_to(const std::string& host, const std::string& port) {
  addrinfo* found = resolve(host, port, false);
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && ::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  const std::string why = std::strerror(errno);
  ::freeaddrinfo(found);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot connect to rank 0's watchdog at {}:{}: {}", host, port, why));
  return fd;
}

// Best effort: a peer that is gone cannot be told anything.
void send_line(int fd, const std::string& line) {
  for (size_t sent = 0; sent < line.size();) {
    const ssize_t n = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
}

// Appends what has arrived on `fd` to `buffer` without blocking; false once the peer closed (or reset) it.
bool receive(int fd, std::string* buffer) {
  char chunk[4096];
  while (true) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
    if (n > 0) {
      buffer->append(chunk, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }
}

}  // namespace

struct Watchdog::Impl {
  // Why this rank stops; `culprit` is the rank that died, hung or posted it (-1 unknown).
  struct Finding {
    int code = kRuntimeExitCode;
    std::string reason;
    int culprit = -1;
  };
  struct Link {
    int fd = -1;
    int rank = -1;  // the peer's rank; on rank 0, -1 until its "rank" line arrived
    std::string buffer;
  };
  struct Seen {
    int64_t count = -1;
    std::chrono::steady_clock::time_point since;
  };

  c10::intrusive_ptr<c10d::Store> store;   // the watchdog thread's own connection
  c10::intrusive_ptr<c10d::Store> poster;  // find_silent_ranks' connection (other threads)
  WatchdogConfig config;
  AbortHandler on_abort;
  int wake[2] = {-1, -1};  // stop() and report() write a byte to wake the thread's poll
  int listener = -1;       // rank 0
  // Rank 0: one per rank that connected; the others: the one to rank 0. The watchdog thread's only,
  // then the destructor's.
  std::vector<Link> links;
  std::thread thread;

  mutable std::mutex mutex;  // guards the fields below
  mutable std::condition_variable verdict_changed;
  bool stopping = false;
  bool thread_done = false;         // the thread will not act on a report any more
  std::optional<Finding> reported;  // handed in by report(), taken by the thread
  std::string verdict;              // set once the thread decided to stop this rank
  std::vector<Seen> seen;           // rank 0: when each rank's count last changed
  std::mutex probe_mutex;           // find_silent_ranks share the poster connection

  ~Impl() {
    for (Link& link : links)
      if (link.fd >= 0) ::close(link.fd);
    for (int fd : {listener, wake[0], wake[1]})
      if (fd >= 0) ::close(fd);
  }

  void wake_thread() {
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(wake[1], &byte, 1);
  }

  void run() {
    {
      std::lock_guard lock(mutex);
      seen.assign(static_cast<size_t>(config.world_size), Seen{});
      const auto started = std::chrono::steady_clock::now();
      for (auto& s : seen) s.since = started;
    }
    auto next_beat = std::chrono::steady_clock::now() + config.interval;
    while (true) {
      std::vector<pollfd> fds{{wake[0], POLLIN, 0}};
      if (listener >= 0) fds.push_back({listener, POLLIN, 0});
      for (const Link& link : links) fds.push_back({link.fd, POLLIN, 0});
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_beat - std::chrono::steady_clock::now());
      ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(left.count(), 0)));
      if (fds[0].revents != 0) {  // drained before `reported` is looked at: a later report wakes the next poll
        char drained[64];
        [[maybe_unused]] const auto n = ::read(wake[0], drained, sizeof(drained));
      }
      std::optional<Finding> found;
      {
        std::lock_guard lock(mutex);
        if (stopping) {
          thread_done = true;
          return;
        }
        found.swap(reported);
      }
      const size_t first_link = listener >= 0 ? 2 : 1;
      if (!found && listener >= 0 && fds[1].revents != 0) accept_link();
      for (size_t i = 0; !found && i + first_link < fds.size(); ++i) {
        if (fds[i + first_link].revents != 0) found = read_link(links[i]);
      }
      if (!found && std::chrono::steady_clock::now() >= next_beat) {
        next_beat = std::chrono::steady_clock::now() + config.interval;
        found = beat();
      }
      std::erase_if(links, [](const Link& link) { return link.fd < 0; });
      if (found) {
        stop_rank(*found);
        return;
      }
    }
  }

  // One heartbeat: beat, look for a posted abort, and (rank 0) for a silent rank.
  std::optional<Finding> beat() {
    try {
      store->add(heartbeat_key(config.rank), 1);
      if (store->check({kAbortKey})) {
        const auto bytes = store->get(kAbortKey);
        const std::string posted(bytes.begin(), bytes.end());
        const size_t newline = posted.find('\n');
        Finding f{std::atoi(posted.substr(0, newline).c_str()),
                  newline == std::string::npos ? posted : posted.substr(newline + 1)};
        if (f.code <= 0) f.code = kRuntimeExitCode;
        return f;
      }
      if (config.rank == 0) return find_silent_rank();
    } catch (const std::exception& e) {
      return Finding{kRuntimeExitCode,
                     fmt::format("runtime: lost the rendezvous store (rank 0 on {} died?): {}", host(0), e.what()), 0};
    }
    return std::nullopt;
  }

  std::optional<Finding> find_silent_rank() {
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
        return Finding{kRuntimeExitCode,
                       fmt::format("runtime: rank {} (host {}) sent no heartbeat for {} s (it died or hung)", r, host(r),
                                   std::chrono::duration_cast<std::chrono::seconds>(now - s.since).count()),
                       r};
      }
    }
    return std::nullopt;
  }

  void accept_link() {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) links.push_back(Link{fd, -1, ""});
  }

  // Reads what arrived on `link`; closes it (fd -1) at its end. A finding: an abort line, or the
  // end of a known rank's link without one.
  std::optional<Finding> read_link(Link& link) {
    const bool closed = !receive(link.fd, &link.buffer);
    for (size_t newline; (newline = link.buffer.find('\n')) != std::string::npos;) {
      const std::string line = link.buffer.substr(0, newline);
      link.buffer.erase(0, newline + 1);
      if (line.rfind("rank ", 0) == 0 && config.rank == 0) link.rank = std::atoi(line.c_str() + 5);
      if (line.rfind("abort ", 0) == 0) {
        const size_t space = line.find(' ', 6);
        Finding f{std::atoi(line.substr(6, space - 6).c_str()), space == std::string::npos ? "" : line.substr(space + 1),
                  config.rank == 0 ? link.rank : 0};
        if (f.code <= 0) f.code = kRuntimeExitCode;
        return f;
      }
    }
    if (!closed) return std::nullopt;
    ::close(link.fd);
    link.fd = -1;
    if (config.rank != 0) {
      return Finding{kRuntimeExitCode, fmt::format("runtime: rank 0 (host {}) died: its watchdog link closed", host(0)), 0};
    }
    if (link.rank <= 0 || link.rank >= config.world_size) return std::nullopt;  // not a rank of this job
    return Finding{kRuntimeExitCode,
                   fmt::format("runtime: rank {} (host {}) died: its watchdog link to rank 0 closed (its log, or its "
                               "launcher's, says why)",
                               link.rank, host(link.rank)),
                   link.rank};
  }

  // The thread's end: record the verdict, tell the other ranks, run on_abort.
  void stop_rank(const Finding& f) {
    {
      std::lock_guard lock(mutex);
      verdict = f.reason;
      thread_done = true;
    }
    verdict_changed.notify_all();
    try {
      const std::string posted = fmt::format("{}\n{}", f.code, f.reason);
      if (!store->check({kAbortKey})) store->set(kAbortKey, std::vector<uint8_t>(posted.begin(), posted.end()));
    } catch (const std::exception&) {
    }
    const std::string line = abort_line(f.code, f.reason);
    for (const Link& link : links) {
      if (link.fd >= 0 && link.rank != f.culprit) send_line(link.fd, line);
    }
    if (config.rank == 0) linger(f.culprit);
    on_abort(f.code, f.reason);
  }

  // Rank 0 hosts the store: it stays until every linked rank but the culprit has left (each reads
  // the reason and exits), at most two polling periods.
  void linger(int culprit) {
    const auto deadline = std::chrono::steady_clock::now() + 2 * config.interval;
    while (std::chrono::steady_clock::now() < deadline) {
      std::vector<pollfd> fds;
      for (const Link& link : links) {
        if (link.fd >= 0 && link.rank != culprit) fds.push_back({link.fd, POLLIN, 0});
      }
      if (fds.empty()) return;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(left.count(), 0)));
      for (Link& link : links) {
        if (link.fd >= 0 && link.rank != culprit && !receive(link.fd, &link.buffer)) {
          ::close(link.fd);
          link.fd = -1;
        }
      }
    }
  }

  std::string host(int rank) const {
    return rank >= 0 && rank < static_cast<int>(config.hosts.size()) && !config.hosts[rank].empty() ? config.hosts[rank] : "?";
  }
};

namespace detail {

std::unique_ptr<Watchdog> make_watchdog(const c10::intrusive_ptr<c10d::Store>& store,
                                        const c10::intrusive_ptr<c10d::Store>& poster, const WatchdogConfig& config,
                                        Watchdog::AbortHandler on_abort) {
  auto impl = std::make_unique<Watchdog::Impl>();
  impl->store = store;
  impl->poster = poster;
  impl->config = config;
  impl->on_abort = std::move(on_abort);
  if (::pipe2(impl->wake, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("cannot create the watchdog's wake pipe");
  // Rank 0 listens for the links before the others look for its address; each then says who it is.
  if (config.rank == 0) {
    const auto [fd, port] = listen_on(config.address);
    impl->listener = fd;
    const std::string where = fmt::format("{} {}", config.address, port);
    store->set(kLinkKey, std::vector<uint8_t>(where.begin(), where.end()));
  } else {
    store->wait({kLinkKey}, config.link_timeout);
    const auto bytes = store->get(kLinkKey);
    const std::string where(bytes.begin(), bytes.end());
    const size_t space = where.rfind(' ');
    const int fd = connect_to(where.substr(0, space), where.substr(space + 1));
    impl->links.push_back(Watchdog::Impl::Link{fd, 0, ""});
    send_line(fd, fmt::format("rank {}\n", config.rank));
  }
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
  impl_->wake_thread();
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
  // Its own store connection: the watchdog thread uses the other.
  std::lock_guard probe(impl_->probe_mutex);
  const int world_size = impl_->config.world_size;
  auto counts = [&] {
    std::vector<int64_t> out(static_cast<size_t>(world_size));
    for (int r = 0; r < world_size; ++r) out[static_cast<size_t>(r)] = impl_->poster->add(heartbeat_key(r), 0);
    return out;
  };
  std::vector<int64_t> before;
  std::string store_gone;
  try {
    before = counts();
  } catch (const std::exception& e) {
    store_gone = fmt::format("the rendezvous store is gone ({})", e.what());
  }
  {
    std::unique_lock lock(impl_->mutex);
    if (impl_->verdict_changed.wait_for(lock, wait, [&] { return !impl_->verdict.empty(); })) return impl_->verdict;
  }
  if (!store_gone.empty()) return store_gone;
  try {
    const std::vector<int64_t> after = counts();
    std::string silent;
    for (int r = 0; r < world_size; ++r) {
      if (r == impl_->config.rank || after[static_cast<size_t>(r)] != before[static_cast<size_t>(r)]) continue;
      silent += fmt::format("{}rank {} (host {})", silent.empty() ? "" : ", ", r, impl_->host(r));
    }
    return silent.empty() ? "" : silent + " stopped sending heartbeats";
  } catch (const std::exception& e) {
    return fmt::format("the rendezvous store is gone ({})", e.what());
  }
}

void Watchdog::report(int exit_code, const std::string& reason) {
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->verdict.empty()) return;  // the thread is stopping the rank already
    if (!impl_->thread_done) {
      if (!impl_->reported) impl_->reported = Impl::Finding{exit_code, reason, -1};
      impl_->wake_thread();
      return;
    }
  }
  impl_->on_abort(exit_code, reason);  // the thread has stopped: nobody else will
}

}  // namespace rankserve::runtime
