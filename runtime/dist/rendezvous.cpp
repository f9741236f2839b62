#include "runtime/dist/rendezvous.h"

#include <fmt/format.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "core/setting_error.h"
#include "runtime/dist/store_access.h"

namespace rankserve::runtime {
namespace {

constexpr const char* kJobKey = "rankserve/job";
constexpr size_t kMaxNamedRanks = 16;
constexpr std::chrono::seconds kVerdictGrace{5};

std::string to_string(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }
std::vector<uint8_t> to_bytes(const std::string& text) { return std::vector<uint8_t>(text.begin(), text.end()); }

double seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

std::string encode(const PeerInfo& p) { return fmt::format("{}\t{}\t{}\t{}", p.hostname, p.address, p.pid, p.device); }

PeerInfo decode(int rank, const std::string& text) {
  PeerInfo p;
  p.rank = rank;
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t tab; (tab = text.find('\t', start)) != std::string::npos; start = tab + 1)
    fields.push_back(text.substr(start, tab - start));
  fields.push_back(text.substr(start));
  fields.resize(4);
  p.hostname = fields[0];
  p.address = fields[1];
  p.pid = std::atoi(fields[2].c_str());
  p.device = fields[3];
  return p;
}

std::string peer_key(int rank) { return fmt::format("peer/{}", rank); }

}  // namespace

struct Rendezvous::Impl {
  RendezvousConfig config;
  c10::intrusive_ptr<c10d::TCPStore> tcp;
  c10::intrusive_ptr<c10d::Store> store;  // scoped to the job

  std::string head() const { return fmt::format("{}:{}", config.store_host, config.store_port); }

  // The message for a wait that ran out: which ranks never arrived, with their expected hosts.
  // `store` must be a fresh connection: a c10d client whose wait timed out may be out of step.
  std::string describe_missing(c10d::Store& store, const std::string& cause) const;

  // A new client connection to the job's store, with a short deadline, for the post-mortem.
  c10::intrusive_ptr<c10d::Store> fresh_store() const {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(config.store_port);
    options.isServer = false;
    options.waitWorkers = false;
    options.timeout = std::chrono::seconds(5);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(config.store_host, options);
    return c10::make_intrusive<c10d::PrefixStore>(fmt::format("rankserve/{}", config.job_id), tcp);
  }
  std::string head_host_name() const {
    return config.expected_hosts.empty() || config.expected_hosts[0].empty() ? config.store_host : config.expected_hosts[0];
  }
};

std::string Rendezvous::Impl::describe_missing(c10d::Store& store, const std::string& cause) const {
  const RendezvousConfig& c = config;
  std::vector<std::string> missing;
  int num_missing = 0;
  try {
    for (int r = 0; r < c.world_size; ++r) {
      if (store.check({peer_key(r)})) continue;
      if (++num_missing <= static_cast<int>(kMaxNamedRanks)) {
        const std::string host = r < static_cast<int>(c.expected_hosts.size()) ? c.expected_hosts[r] : "";
        missing.push_back(host.empty() ? fmt::format("{}", r) : fmt::format("{} (host {})", r, host));
      }
    }
  } catch (const std::exception& lost) {
    return fmt::format("rendezvous: lost the store at {} (rank 0 on {} died?) while waiting for peers: {}", head(),
                       head_host_name(), lost.what());
  }
  if (num_missing == 0) return fmt::format("rendezvous: waiting for peers at {} failed: {}", head(), cause);
  return fmt::format(
      "rendezvous: {} of {} ranks never arrived within {} s: rank{} {}{} (check their logs; raise {} if they start "
      "slowly)",
      num_missing, c.world_size, seconds(c.timeout), num_missing > 1 ? "s" : "", fmt::join(missing, ", "),
      num_missing > static_cast<int>(kMaxNamedRanks) ? ", ..." : "", setting_words(Setting::rendezvous_timeout));
}

// Store host only: waits until every other arrived rank has read the failure verdict, or `grace`.
static void linger_until_read(c10d::Store& store, std::chrono::seconds grace) {
  const auto deadline = std::chrono::steady_clock::now() + grace;
  const int64_t others = store.add("arrived", 0) - 1;
  while (store.add("verdict_read", 0) < others && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Rendezvous::Rendezvous(const RendezvousConfig& config) : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(config.store_port);
  options.isServer = config.serve_store;
  options.numWorkers = c10::nullopt;
  options.waitWorkers = false;  // arrivals are counted by wait_for_peers, which can name the missing ranks
  options.timeout = config.timeout;
  try {
    impl_->tcp = c10::make_intrusive<c10d::TCPStore>(config.store_host, options);
  } catch (const std::exception& e) {
    if (config.serve_store) {
      throw SettingError(
          ErrorCode::rendezvous,
          fmt::format("rendezvous: rank {} cannot serve the store on port {}: {} (is another job using the port "
                      "on {}? change {})",
                      config.rank, config.store_port, e.what(), config.hostname, setting_words(Setting::store_port)),
          Setting::store_port);
    }
    throw SettingError(ErrorCode::rendezvous,
                       fmt::format("rendezvous: rank 0 (host {}) never opened the store at {} within {} s; rank {} gives up "
                                   "(check rank 0's log; raise {} if it starts slowly)",
                                   impl_->head_host_name(), impl_->head(), seconds(config.timeout), config.rank,
                                   setting_words(Setting::rendezvous_timeout)),
                       Setting::rendezvous_timeout);
  }
  try {
    if (config.serve_store) {
      impl_->tcp->set(kJobKey, to_bytes(config.job_id));
    } else {
      impl_->tcp->wait({kJobKey}, config.timeout);
      const std::string job = to_string(impl_->tcp->get(kJobKey));
      if (job != config.job_id) {
        throw SettingError(ErrorCode::rendezvous,
                           fmt::format("rendezvous: the store at {} belongs to job '{}', not to this job '{}' (two jobs share "
                                       "the port: change {})",
                                       impl_->head(), job, config.job_id, setting_words(Setting::store_port)),
                           Setting::store_port);
      }
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: store at {} did not answer: {}", impl_->head(), e.what()));
  }
  impl_->store = c10::make_intrusive<c10d::PrefixStore>(fmt::format("rankserve/{}", config.job_id), impl_->tcp);
}

Rendezvous::~Rendezvous() = default;

const RendezvousConfig& Rendezvous::config() const { return impl_->config; }

std::unique_ptr<Watchdog> Rendezvous::start_watchdog(Watchdog::AbortHandler on_abort) {
  const RendezvousConfig& c = impl_->config;
  WatchdogConfig config;
  config.rank = c.rank;
  config.world_size = c.world_size;
  config.hosts = c.expected_hosts;
  config.address = c.advertise_address;
  config.link_timeout = c.timeout;
  try {
    return detail::make_watchdog(impl_->fresh_store(), impl_->fresh_store(), config, std::move(on_abort));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::rendezvous,
                fmt::format("rendezvous: cannot open a watchdog connection to {}: {}", impl_->head(), e.what()));
  }
}

std::vector<PeerInfo> Rendezvous::wait_for_peers() {
  const RendezvousConfig& c = impl_->config;
  auto& store = *impl_->store;
  PeerInfo me{c.rank, c.hostname, c.advertise_address, static_cast<int>(::getpid()), c.device};
  try {
    store.set(peer_key(c.rank), to_bytes(encode(me)));
    if (store.add("arrived", 1) == c.world_size) store.set("all_arrived", to_bytes("1"));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: lost the store at {}: {}", impl_->head(), e.what()));
  }
  // The store host decides at its deadline and tells the others; they wait a little longer for
  // that verdict and only then look for themselves.
  const auto wait = c.serve_store ? c.timeout : c.timeout + kVerdictGrace;
  std::string verdict;
  try {
    store.wait({"all_arrived"}, wait);
    verdict = to_string(store.get("all_arrived"));
  } catch (const std::exception& e) {
    try {
      auto fresh = impl_->fresh_store();
      if (!c.serve_store && fresh->check({"all_arrived"})) verdict = to_string(fresh->get("all_arrived"));
      if (verdict.empty()) verdict = "failed:" + impl_->describe_missing(*fresh, e.what());
      if (c.serve_store) {
        fresh->set("all_arrived", to_bytes(verdict));  // set, unlike compareSet, wakes the waiting ranks
        linger_until_read(*fresh, kVerdictGrace);
      }
    } catch (const std::exception& lost) {
      verdict = fmt::format("failed:rendezvous: lost the store at {} (rank 0 on {} died?) while waiting for peers: {}",
                            impl_->head(), impl_->head_host_name(), lost.what());
    }
  }
  if (verdict.rfind("failed:", 0) == 0) {
    if (!c.serve_store) {
      try {
        impl_->fresh_store()->add("verdict_read", 1);
      } catch (const std::exception&) {
      }
    }
    // The verdict travels between ranks as text: the setting it names is found again by its words.
    const std::string message = verdict.substr(7);
    if (message.find(setting_words(Setting::rendezvous_timeout)) != std::string::npos)
      throw SettingError(ErrorCode::rendezvous, message, Setting::rendezvous_timeout);
    throw Error(ErrorCode::rendezvous, message);
  }
  std::vector<PeerInfo> peers;
  try {
    for (int r = 0; r < c.world_size; ++r) peers.push_back(decode(r, to_string(store.get(peer_key(r)))));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: lost the store at {}: {}", impl_->head(), e.what()));
  }
  return peers;
}

ProcessGroups Rendezvous::create_groups(const ParallelLayout& layout, Backend backend) {
  const RendezvousConfig& c = impl_->config;
  ProcessGroups groups;
  for (GroupKind kind : {GroupKind::world, GroupKind::tp, GroupKind::pp, GroupKind::dp}) {
    auto all = layout.groups(kind);
    for (size_t id = 0; id < all.size(); ++id) {
      const auto& members = all[id];
      if (std::find(members.begin(), members.end(), c.rank) == members.end()) continue;
      detail::GroupSpec spec{kind, static_cast<int>(id), members, c.rank, c.timeout, c.advertise_address, c.device};
      std::unique_ptr<Communicator> comm = backend == Backend::nccl ? detail::make_nccl_communicator(impl_->store, spec)
                                                                    : detail::make_gloo_communicator(impl_->store, spec);
      switch (kind) {
        case GroupKind::world: groups.world = std::move(comm); break;
        case GroupKind::tp: groups.tp = std::move(comm); break;
        case GroupKind::pp: groups.pp = std::move(comm); break;
        case GroupKind::dp: groups.dp = std::move(comm); break;
      }
    }
  }
  return groups;
}

}  // namespace rankserve::runtime
