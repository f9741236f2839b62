// rankserve: the launcher, run once per task (or once per node when it spawns its workers).
// Lifecycle: parse, detect topology, validate everything, then spawn workers or rendezvous,
// build the communicators and run the command. Errors become one FATAL line and an exit code.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "commands/generate_command.h"
#include "commands/plan_command.h"
#include "commands/serve_command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/plural.h"
#include "launcher/address.h"
#include "launcher/hub_download.h"
#include "launcher/options.h"
#include "launcher/pmix_client.h"
#include "launcher/setting_flags.h"
#include "launcher/spawn.h"
#include "launcher/topology.h"
#include "launcher/validate.h"
#include "runtime/dist/communicator.h"
#include "runtime/dist/devices.h"
#include "runtime/dist/rendezvous.h"
#include "runtime/engine.h"
#include "runtime/model/nemo_tokenizer.h"

namespace rankserve::launcher {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kHeadKey = "rankserve.head";

std::string device_for(const Options& options, const Topology& t, int num_visible_gpus) {
  if (num_visible_gpus <= 0) return "cpu";
  GpuSelection gpus = parse_gpus(options.gpus);
  const int id = gpus.ids.empty() ? t.local_rank : gpus.ids[static_cast<size_t>(t.local_rank)];
  return fmt::format("cuda:{}", id);
}

// A StatefulSet pod's DNS record (the headless Service's) appears once the pod has an address, which may be after
// its container started: waits at most --timeout seconds for the head's name, before the workers validate it.
void wait_for_head_name(const Topology& t, double timeout_s) {
  if (resolves(t.head_host)) return;
  log::warn(
      "rendezvous: head host '{}' does not resolve yet; waiting up to {} s for its DNS record (the headless Service "
      "publishes it once the pod has an address)",
      t.head_host, timeout_s);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!resolves(t.head_host)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error(ErrorCode::rendezvous,
                  fmt::format("rendezvous: head host '{}' did not resolve within --timeout={} s (is --k8s-service the "
                              "StatefulSet's serviceName, a headless Service with publishNotReadyAddresses: true?)",
                              t.head_host, timeout_s));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// The address peers use to reach this rank: the interface that routes to the head.
std::string choose_advertise_address(const Options& options, const Topology& t) {
  if (!options.advertise_address.empty()) return options.advertise_address;
  std::string target = t.head_host;
  if (t.rank == 0 || target.empty()) {
    // The head routes toward another node when it knows one that resolves (a StatefulSet's other pods may have
    // no DNS record yet), else it names its own host.
    target = t.hostname;
    for (const std::string& host : t.node_hosts) {
      if (!host.empty() && host != t.hostname && t.num_nodes > 1 && resolves(host)) target = host;
    }
  }
  if (t.num_nodes == 1 && !resolves(target)) return "127.0.0.1";  // a lone node whose own name does not resolve
  std::string address = route_address_to(target);                 // not const: returned by move
  if (t.num_nodes > 1 && is_loopback(address)) {
    throw Error(ErrorCode::rendezvous,
                fmt::format("rendezvous: the route from {} to '{}' uses loopback address {} but the job spans {} nodes "
                            "(fix the host's entry in /etc/hosts or pass --advertise-address)",
                            t.hostname, target, address, t.num_nodes));
  }
  return address;
}

// Under PMIx the head's store address is not known in advance: rank 0 publishes it.
void publish_head_through_pmix(PmixClient& pmix, Topology& t, const std::string& advertise, const Options& options) {
  const auto timeout = std::chrono::seconds(static_cast<long long>(options.timeout_s));
  if (t.rank == 0) {
    if (t.head_port == 0) t.head_port = find_free_port();
    t.head_host = advertise;
    pmix.put(kHeadKey, fmt::format("{}:{}", t.head_host, t.head_port));
  }
  pmix.fence(timeout);
  if (t.rank != 0) {
    const std::string head = pmix.get(0, kHeadKey, timeout);
    const size_t colon = head.rfind(':');
    t.head_host = head.substr(0, colon);
    t.head_port = std::stoi(head.substr(colon + 1));
  }
  t.head_from = "PMIx (published by rank 0)";
}

std::vector<std::string> expected_hosts(const Topology& t) {
  std::vector<std::string> hosts;
  for (int r = 0; r < t.world_size; ++r) hosts.push_back(t.host_of_rank(r));
  return hosts;
}

// How long a failed collective waits for the watchdog to name the rank that went away: its verdict
// comes at once when the rank's link closed; a hung rank shows as a heartbeat that stops.
constexpr std::chrono::milliseconds kFindCauseWait{2500};
// The watchdog thread tells the others (rank 0 waits up to 2 s for them to leave) and rank 0 writes
// its error responses (HttpServer::stop, up to 6 s) before it exits; this bounds the wait for that.
constexpr std::chrono::seconds kStopDeadline{15};

// This rank's end on a failure: the watchdog thread tells the other ranks, fails rank 0's requests
// and exits (the handler in run_rank); this thread only waits for that, with a deadline.
[[noreturn]] void stop_through(runtime::Watchdog& watchdog, int code, const std::string& reason) {
  watchdog.report(code, reason);  // dropped when the watchdog already stops this rank for another reason
  std::this_thread::sleep_for(kStopDeadline);
  log::fatal("{} (the watchdog did not stop this rank within {} s)", reason, kStopDeadline.count());
  std::_Exit(code);
}

void log_peer_table(const std::vector<runtime::PeerInfo>& peers) {
  std::string table = "rank  host                     address          pid      device";
  for (const auto& p : peers) {
    table += fmt::format("\n{:<5} {:<24} {:<16} {:<8} {}", p.rank, p.hostname, p.address, p.pid, p.device);
  }
  log::info("{}:\n{}",
            peers.size() == 1 ? std::string("the one rank arrived") : fmt::format("all {} ranks arrived", peers.size()), table);
}

int run_rank(const Options& options, Topology t, PmixClient* pmix, int num_visible_gpus) {
  const std::string device = device_for(options, t, num_visible_gpus);
  const std::string advertise = choose_advertise_address(options, t);
  // Launched with PMIx: peers learn the store's address from rank 0 through PMIx, not by guessing.
  if (pmix) publish_head_through_pmix(*pmix, t, advertise, options);
  if (t.head_port == 0) {
    throw Error(ErrorCode::usage, "options: no store port could be derived from the job id (pass --store-port)");
  }
  if (t.rank == 0) log::info("options:\n{}topology:\n{}", describe_options(options), describe_topology(t));
  log::info("{}", describe_rank(t));

  runtime::RendezvousConfig config;
  config.rank = t.rank;
  config.world_size = t.world_size;
  config.job_id = t.job_id;
  config.store_host = t.head_host;
  config.store_port = t.head_port;
  config.serve_store = t.rank == 0 && !t.store_exists;
  config.hostname = t.hostname;
  config.advertise_address = advertise;
  config.device = device;
  config.expected_hosts = expected_hosts(t);
  config.timeout = std::chrono::milliseconds(static_cast<long long>(options.timeout_s * 1000));

  const auto start = Clock::now();
  runtime::Rendezvous rendezvous(config);
  const auto peers = rendezvous.wait_for_peers();
  if (t.rank == 0) log_peer_table(peers);

  // From here a failing or silent rank stops every rank within seconds (runtime/dist/watchdog.h):
  // every failure goes through the watchdog thread, which tells the other ranks and then runs this
  // handler. While serving, rank 0 first fails its in-flight requests with the reason and lets the
  // responses out (the hook's callback returns once they are written).
  FailureHook failure_hook;
  std::unique_ptr<runtime::Watchdog> watchdog = rendezvous.start_watchdog([&failure_hook](int code, const std::string& reason) {
    log::fatal("{}", reason);
    report_failure_to_launcher(capture_environment(), reason);
    failure_hook.fail_requests(reason);
    std::_Exit(code);
  });
  // Set here, before any thread that calls them starts (run_serve's), and constant after.
  failure_hook.heartbeat_ages = [&watchdog] { return watchdog->heartbeat_ages(); };
  failure_hook.find_silent_ranks = [&watchdog] { return watchdog->find_silent_ranks(kFindCauseWait); };
  failure_hook.stop_rank = [&watchdog](int code, const std::string& reason) { stop_through(*watchdog, code, reason); };
  const runtime::ParallelLayout layout{t.world_size, options.tp_size, options.pp_size};
  const auto backend = device == "cpu" ? runtime::Backend::gloo : runtime::Backend::nccl;
  runtime::ProcessGroups groups;
  double setup_s = 0;
  int rounds = 0;
  try {
    groups = rendezvous.create_groups(layout, backend);
    setup_s = std::chrono::duration<double>(Clock::now() - start).count();
    const auto check_until = Clock::now() + std::chrono::duration<double>(options.check_duration_s);
    do {
      runtime::check_groups(groups, t.rank);
      ++rounds;
      // Every rank must agree on whether to go on: rank 0's clock decides, broadcast to all.
      std::byte more{static_cast<unsigned char>(Clock::now() < check_until)};
      groups.world->broadcast(std::span<std::byte>(&more, 1), 0);
      if (more == std::byte{0}) break;
    } while (true);
    if (options.command == "generate") run_generate(options, groups, t.rank);
    if (options.command == "serve") run_serve(options, groups, t, failure_hook);
  } catch (const Error& e) {
    std::string reason = fmt::format("rank {} (host {}) failed: {}", t.rank, t.hostname, user_message(e));
    if (e.code() == ErrorCode::runtime) {
      // A failed collective names a connection, not a rank: the watchdog says which rank went away
      // (and, having a verdict, is already stopping this rank with it).
      if (const std::string cause = watchdog->find_silent_ranks(kFindCauseWait); !cause.empty())
        reason = fmt::format("{}: {}", cause, reason);
    }
    stop_through(*watchdog, exit_code(e.code()), reason);
  }
  // Stop beating before the last collective, so that rank 0 (the store) may leave first.
  watchdog->stop();
  groups.world->barrier();
  if (options.command != "check") return 0;
  if (t.rank == 0) {
    fmt::print(
        "check passed: {} on {}, tp {} pp {} dp {}, backend {}, {} rounds on world/tp/pp/dp, rendezvous + groups {:.2f} s\n",
        count_of(t.world_size, "rank", "ranks"), count_of(t.num_nodes, "node", "nodes"), layout.tp_size, layout.pp_size,
        layout.dp_size(), backend == runtime::Backend::gloo ? "gloo" : "nccl", rounds, setup_s);
    std::fflush(stdout);
  }
  return 0;
}

// A NeMo checkpoint's saved tensor- and pipeline-parallel sizes are the run's defaults (--tp / --pp
// or their variables override; any layout works, the shards are re-sharded on load).
void apply_checkpoint_defaults(ParsedOptions& parsed) {
  Options& o = parsed.options;
  const auto& set = parsed.set_by_user;
  auto given = [&](const char* name) { return std::find(set.begin(), set.end(), name) != set.end(); };
  if ((o.command != "generate" && o.command != "serve") || o.model_path.empty() || o.model_path.rfind("random/", 0) == 0) return;
  if ((given("tp") && given("pp")) || !runtime::is_nemo_path(o.model_path)) return;
  runtime::EngineOptions engine_options;
  engine_options.model_path = o.model_path;
  const runtime::ModelConfig saved = runtime::read_model_config(engine_options);
  if (!given("tp")) o.tp_size = saved.checkpoint_tp_size;
  if (!given("pp")) o.pp_size = saved.checkpoint_pp_size;
}

// Compute threads per rank: --cpu-threads, else OMP_NUM_THREADS (libtorch applies it itself: 0 keeps
// it), else SLURM_CPUS_PER_TASK, else this process's CPUs (its affinity mask) shared by the node's ranks.
int cpu_threads_for(const Options& o, const Topology& t, const EnvMap& env) {
  if (o.cpu_threads > 0) return o.cpu_threads;
  if (lookup(env, "OMP_NUM_THREADS")) return 0;
  if (auto per_task = lookup(env, "SLURM_CPUS_PER_TASK")) {
    if (const int n = std::atoi(per_task->c_str()); n > 0) return n;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = ::sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  return std::max(1, cpus / std::max(1, t.local_world_size));
}

int run(int argc, char** argv) {
  const EnvMap env = capture_environment();
  const std::vector<std::string> args(argv + 1, argv + argc);
  ParsedOptions parsed = parse_options(args, env);
  if (parsed.help) {
    std::fputs(parsed.help_text.c_str(), stdout);
    return 0;
  }
  if (parsed.version) {
    std::puts("rankserve " RANKSERVE_VERSION);
    return 0;
  }
  const Options& options = parsed.options;
  log::Config log_config;
  log_config.level = log::parse_level(options.log_level, "--log-level");
  log_config.json = options.log_json;
  log_config.all_ranks_info = options.log_all_ranks;
  log_config.host = own_hostname();
  log::configure(log_config);
  // A hub id becomes its cached snapshot before anything reads the checkpoint (--dry-run and check fetch
  // nothing; plan fetches the config only).
  // Every process fetches; those of one host take turns, so only the first downloads (launcher/hub_download.h).
  if (auto hub = parse_hub_id(options.model_path); hub && !options.dry_run && options.command != "check") {
    throw_if_any(validate_options(options));  // a mistyped flag fails before the download, not after it
    HubSettings hub_settings = hub_settings_from_env(env);
    if (!options.download_dir.empty()) hub_settings.cache_dir = options.download_dir;
    parsed.options.hub_model = options.model_path;
    parsed.options.model_path =
        fetch_hub_model(*hub, hub_settings, std::chrono::milliseconds(static_cast<long long>(options.timeout_s * 1000)),
                        options.command == "plan" ? HubFiles::config : HubFiles::model);
  }
  apply_checkpoint_defaults(parsed);
  if (options.command == "plan") return run_plan(parsed);  // config arithmetic: no launcher, no ranks
  if (options.model_name_was_model) {
    log::info("--model-name={} is the model to load (the OPT example's meaning); clients ask for it by its family's name",
              options.model_path);
  }

  std::unique_ptr<PmixClient> pmix;
  if (lookup(env, "RANKSERVE_WORKER").value_or("") != "1") pmix = PmixClient::connect_if_launched(env);
  if (pmix) {
    const PmixInfo& p = pmix->info();
    log::debug("pmix: nspace {} rank {}/{} local {}/{} node id {} of {} host {} node list {}", p.nspace, p.rank, p.size,
               p.local_rank, p.local_size, p.node_id, p.num_nodes, p.hostname, fmt::join(p.node_hosts, ","));
  }
  LaunchContext context{env, own_hostname(), pmix ? std::optional(pmix->info()) : std::nullopt, runtime::count_visible_gpus()};
  Topology topology = topology_from_env(options, context);
  log_config.rank = topology.rank;
  log_config.world_size = topology.world_size;
  log_config.host = topology.hostname;
  log::configure(log_config);

  throw_if_any(validate(options, topology, context.num_visible_gpus, resolves));
  if (options.command == "serve" && topology.rank == 0 && !topology.spawn_workers) {
    if (const std::string w = random_weights_warning(options); !w.empty()) log::warn("{}", w);
  }

  if (options.dry_run) {
    if (topology.rank == 0) std::printf("%s\n%s", describe_options(options).c_str(), describe_topology(topology).c_str());
    else std::printf("%s\n", describe_rank(topology).c_str());
    return 0;
  }
  if (topology.source == TopologySource::kubernetes) wait_for_head_name(topology, options.timeout_s);
  if (topology.spawn_workers) {
    SpawnPlan plan;
    plan.num_workers = topology.local_world_size;
    plan.first_rank = topology.rank;
    plan.world_size = topology.world_size;
    plan.node_rank = topology.node_rank;
    plan.head_host = topology.head_host;
    plan.head_port = topology.head_port != 0 ? topology.head_port : find_free_port();
    plan.job_id = topology.job_id.empty() ? fmt::format("local-{}-{}", own_hostname(), ::getpid()) : topology.job_id;
    if (std::none_of(topology.node_hosts.begin(), topology.node_hosts.end(), [](const std::string& h) { return h.empty(); }))
      plan.node_hosts = fmt::format("{}", fmt::join(topology.node_hosts, ","));
    plan.args = args;
    // serve drains for --shutdown-timeout after the first signal; the workers get that long and a little more.
    if (options.command == "serve") plan.stop_grace_s = static_cast<int>(options.shutdown_timeout_s) + 5;
    return run_workers(plan);
  }
  parsed.options.cpu_threads = cpu_threads_for(options, topology, env);
  return run_rank(options, topology, pmix.get(), context.num_visible_gpus);
}

}  // namespace
}  // namespace rankserve::launcher

int main(int argc, char** argv) {
  try {
    return rankserve::launcher::run(argc, argv);
  } catch (const rankserve::Error& e) {
    // The one conversion of an Error into what the user reads: settings named by their flags.
    const std::string message = rankserve::launcher::user_message(e);
    rankserve::log::fatal("{}", message);
    rankserve::launcher::report_failure_to_launcher(rankserve::launcher::capture_environment(), message);
    return rankserve::exit_code(e.code());
  } catch (const std::exception& e) {
    rankserve::log::fatal("internal: {}", e.what());
    return rankserve::exit_code(rankserve::ErrorCode::runtime);
  }
}
