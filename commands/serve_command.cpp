#include "commands/serve_command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "commands/generate_command.h"
#include "commands/model_loading.h"
#include "core/error.h"
#include "core/log.h"
#include "core/plural.h"
#include "launcher/setting_flags.h"
#include "launcher/spawn.h"
#include "net/grpc/grpc_server.h"
#include "net/http_server.h"
#include "runtime/serving/scheduler.h"
#include "runtime/tokenizer/tokenizer_folder.h"

namespace rankserve::launcher {
namespace {

constexpr double kStaleHeartbeatSeconds = 3;  // heartbeats come every second

// SIGTERM/SIGINT reach a watcher thread through a pipe (the handler only writes a note); the second
// operator signal ends the process at once. A SIGTERM that the spawning launcher queued after a worker
// failed (spawn.h) is no operator's and counts as none: it carries the failed worker. A signal the launcher
// forwards (kForwardedSignal) may have reached the worker directly too (Slurm signals every process of the
// step): the direct and the forwarded ones are counted apart, and the operator's signals are the larger count.
// The counts and the pipe are the globals a signal handler needs.
std::atomic<int> g_signals{0};    // operator signals received directly
std::atomic<int> g_forwarded{0};  // operator signals the spawning launcher forwarded
int g_signal_pipe[2] = {-1, -1};

struct SignalNote {
  int signal = 0;            // 0: a wake-up that ends the watcher
  bool worker_loss = false;  // the launcher's SIGTERM; `loss` is encode_worker_loss's
  int loss = 0;
};

void on_signal(int sig, siginfo_t* info, void*) {
  SignalNote note{sig, false, 0};
  const bool from_launcher = info != nullptr && info->si_code == SI_QUEUE && info->si_pid == ::getppid();
  if (from_launcher && sig == SIGTERM && info->si_value.sival_int != kForwardedSignal) {
    note.worker_loss = true;
    note.loss = info->si_value.sival_int;
  } else {
    const bool forwarded = from_launcher && info->si_value.sival_int == kForwardedSignal;
    const int seen = (forwarded ? g_forwarded : g_signals).fetch_add(1) + 1;
    const int other = (forwarded ? g_signals : g_forwarded).load();
    if (seen >= 2 || other >= 2) std::_Exit(128 + sig);
    if (other >= seen) return;  // the same signal, already noted from the other path
  }
  [[maybe_unused]] const auto n = ::write(g_signal_pipe[1], &note, sizeof(note));  // atomic: < PIPE_BUF
}

class SignalWatch {
 public:
  // On the watcher thread: `on_first(signal)` after the first operator SIGTERM or SIGINT,
  // `on_worker_loss(loss)` after the launcher's SIGTERM that names a failed worker. Once destroyed, the process
  // ignores SIGTERM and SIGINT (it is leaving).
  SignalWatch(std::function<void(int)> on_first, std::function<void(const WorkerLoss&)> on_worker_loss) {
    if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) throw Error(ErrorCode::runtime, "serve: cannot create the signal pipe");
    struct sigaction action {};
    action.sa_sigaction = on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGTERM, &action, nullptr);
    ::sigaction(SIGINT, &action, nullptr);
    thread_ = std::thread([on_first = std::move(on_first), on_worker_loss = std::move(on_worker_loss)] {
      SignalNote note;
      while (::read(g_signal_pipe[0], &note, sizeof(note)) == static_cast<ssize_t>(sizeof(note)) && note.signal != 0) {
        if (note.worker_loss) on_worker_loss(decode_worker_loss(note.loss));
        else on_first(note.signal);
      }
    });
  }
  ~SignalWatch() {
    const SignalNote wake;  // ends the watcher without a signal
    [[maybe_unused]] const auto n = ::write(g_signal_pipe[1], &wake, sizeof(wake));
    thread_.join();
    // Serving is over and the rank is on its way out: a late first signal (Slurm signals each node of a step at
    // its own moment, so one may come after the shutdown plan) must not turn a clean exit into a kill.
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    ::close(g_signal_pipe[0]);
    ::close(g_signal_pipe[1]);
  }

 private:
  std::thread thread_;
};

std::string family_name(runtime::ModelFamily family) {
  switch (family) {
    case runtime::ModelFamily::gpt2: return "gpt2";
    case runtime::ModelFamily::opt: return "opt";
    case runtime::ModelFamily::nemo_gpt: return "nemo_gpt";
  }
  return "gpt2";
}

void write_url_file(const std::string& path, const std::string& url) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary);
    out << url << "\n";
    if (!out) throw Error(ErrorCode::usage, fmt::format("options: --url-file={}: cannot write", path));
  }
  std::rename(temporary.c_str(), path.c_str());  // readers never see half a URL
}

// Writes --url-file once `service` first reports ready (every rank loaded, heartbeats fresh), from a
// thread of its own; stops waiting when destroyed. Batch scripts poll for the file, so it must not
// appear while the model is still loading.
class UrlFileWhenReady {
 public:
  UrlFileWhenReady(const std::string& path, const std::string& url, const GenerationService& service) {
    if (path.empty()) return;
    thread_ = std::jthread([path, url, &service](std::stop_token stop) {
      while (!stop.stop_requested()) {
        if (service.status().ready) {
          try {
            write_url_file(path, url);
            log::info("wrote the server URL to --url-file={}", path);
          } catch (const Error& e) {
            log::error("{}", e.what());
          }
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }

 private:
  std::jthread thread_;
};

// Runs `action` when the scope ends, whichever way it ends.
struct OnScopeExit {
  std::function<void()> action;
  ~OnScopeExit() { action(); }
};

// The launcher's word that a worker failed: this rank stops at once (rank 0 failing its requests).
std::function<void(const WorkerLoss&)> stop_on_worker_loss(const FailureHook& hook, const Topology& topology) {
  return [&hook, &topology](const WorkerLoss& loss) {
    // The launcher that spawned this worker supervises this node's workers only: the rank died here.
    hook.stop_rank(exit_code(ErrorCode::runtime),
                   fmt::format("runtime: rank {} (host {}) {}; its launcher stops the other workers", loss.rank,
                               topology.hostname, describe_status(loss.wait_status)));
  };
}

}  // namespace

int max_batch_size_of(const Options& options, const runtime::ModelConfig& config) {
  if (options.max_batch_size > 0) return options.max_batch_size;
  return config.family == runtime::ModelFamily::opt ? 256 : 128;
}

void run_serve(const Options& options, const runtime::ProcessGroups& groups, const Topology& topology, FailureHook& hook) {
  const bool head = topology.rank == 0;
  // Rank 0 tokenizes; it loads the tokenizer before the shards so a missing one fails fast.
  std::optional<runtime::BpeTokenizer> tokenizer;
  if (head) tokenizer = load_tokenizer(options);
  // Every rank must sample from the same vocabulary: rank 0's sizes reach the others.
  std::array<int32_t, 2> vocab{tokenizer ? tokenizer->vocab_size() : 0, tokenizer ? random_model_eos(options, *tokenizer) : -1};
  groups.world->broadcast(std::as_writable_bytes(std::span(vocab)), 0);
  if (!head) {
    LoadedModel loaded = load_model(options, groups, vocab[0], vocab[1]);
    // A first signal changes nothing here: rank 0 drains and its shutdown plan ends every rank at the
    // same iteration (the watchdog covers a head that dies instead). The launcher's SIGTERM after a
    // worker died stops this rank at once.
    SignalWatch signals([](int sig) { log::info("received {}; waiting for rank 0's shutdown plan", strsignal(sig)); },
                        stop_on_worker_loss(hook, topology));
    runtime::follow_plans(*loaded.engine, groups);
    return;
  }

  // Rank 0 starts its HTTP server before the shards load: ports in use fail at once, and during a
  // long load the server answers live (200) and ready (503, "loading").
  const runtime::ModelConfig config = runtime::read_model_config(engine_options_of(options, vocab[0], vocab[1]));
  const bool opt = config.family == runtime::ModelFamily::opt;
  // Every id the tokenizer can produce must be a row of the model: a prompt can then never fail on a rank.
  if (tokenizer->vocab_size() > config.vocab_size) {
    throw Error(ErrorCode::load,
                fmt::format("tokenizer: {} has {} tokens but the model's vocabulary has {} (pass the model's own "
                            "tokenizer with --tokenizer)",
                            tokenizer_folder_of(options), tokenizer->vocab_size(), config.vocab_size));
  }
  runtime::SchedulerOptions so;
  so.model.name = !options.model_name.empty() ? options.model_name : (opt ? "OPT" : "GPT");
  so.model.family = family_name(config.family);
  so.model.source = model_path_of(options);
  so.model.max_context = config.max_position_embeddings;
  so.model.vocab_size = tokenizer->vocab_size();
  so.model.max_batch_size = max_batch_size_of(options, config);
  so.model.eos_token_id = config.eos_token_id;
  // add_BOS (NeMo) prepends <|endoftext|> when the model names no BOS of its own (GPT-2).
  so.bos_token_id = vocab[1] >= 0 ? vocab[1] : config.bos_token_id;
  if (so.bos_token_id < 0) so.bos_token_id = tokenizer->token_id("<|endoftext|>").value_or(-1);
  so.add_bos_by_default = opt;
  so.num_copies = groups.dp->size();
  so.max_queue_size = options.max_queue_size;
  so.prompt_token_budget = options.max_prefill_tokens;
  runtime::Scheduler scheduler(so, *tokenizer);
  if (hook.heartbeat_ages) {
    scheduler.set_heartbeat_ages(hook.heartbeat_ages);
    // Ready only while every rank's heartbeat is recent (the watchdog stops the job after 5 s of silence).
    scheduler.set_health_probe([ages = hook.heartbeat_ages, &topology]() -> std::string {
      const std::vector<double> all = ages();
      for (size_t r = 0; r < all.size(); ++r) {
        if (all[r] > kStaleHeartbeatSeconds) {
          return fmt::format("rank {} (host {}) sent no heartbeat for {:.1f} s", r, topology.host_of_rank(static_cast<int>(r)),
                             all[r]);
        }
      }
      return "";
    });
  }

  net::ServerOptions server_options;
  server_options.address = options.http_address;
  server_options.http_port = options.http_port;
  server_options.metrics_port = options.metrics_port;
  server_options.request_timeout_s = options.request_timeout_s;
  server_options.api_key = options.api_key;
  server_options.error_message = [](const Error& e) { return user_message(e); };
  net::HttpServer server(server_options, scheduler);
  // Beside the HTTP server, on its handlers and service (no second scheduler); stopped before it.
  std::optional<net::GrpcServer> grpc;
  if (options.grpc_port >= 0) grpc.emplace(net::GrpcOptions{options.grpc_address, options.grpc_port}, server);
  auto stop_servers = [&grpc, &server] {
    if (grpc) grpc->stop();
    server.stop();
  };
  // The watchdog thread's last act on rank 0 (it exits next): every request gets the error, and
  // stop() returns once the connections have written it (readiness names the reason meanwhile).
  hook.set_fail_requests([&scheduler, &stop_servers](const std::string& reason) {
    scheduler.fail_all(reason);
    stop_servers();
  });
  OnScopeExit clear_hook{[&hook] { hook.clear_fail_requests(); }};  // before the server goes, however run_serve ends

  // After the first signal the watcher thread drains, then stops what is left at --shutdown-timeout.
  std::mutex done_mutex;
  std::condition_variable done_changed;
  bool serving_done = false;
  auto set_done = [&] {
    std::lock_guard lock(done_mutex);
    serving_done = true;
    done_changed.notify_all();
  };
  SignalWatch drain_on_signal(
      [&](int sig) {
        log::warn("received {}: draining (readiness off, new requests get 503, in-flight ones may take {} s)", strsignal(sig),
                  options.shutdown_timeout_s);
        scheduler.drain();
        std::unique_lock lock(done_mutex);
        if (!done_changed.wait_for(lock, std::chrono::duration<double>(options.shutdown_timeout_s),
                                   [&] { return serving_done; })) {
          scheduler.stop(fmt::format("--shutdown-timeout={} s passed", options.shutdown_timeout_s));
        }
      },
      stop_on_worker_loss(hook, topology));
  // Whatever way this function leaves, the watcher stops waiting before it is joined.
  OnScopeExit done_on_exit{set_done};
  const std::string url = fmt::format("http://{}:{}", topology.hostname, server.http_port());
  log::info("Server http url {}", url);
  if (grpc) log::info("Server grpc url grpc://{}:{}", topology.hostname, grpc->port());
  if (server.metrics_port() > 0) log::info("Server metrics url http://{}:{}/metrics", topology.hostname, server.metrics_port());
  if (!options.url_file.empty()) {  // fails before loading when the file cannot be written at all
    if (!std::ofstream(options.url_file + ".tmp")) {
      throw Error(ErrorCode::usage, fmt::format("options: --url-file={}: cannot write", options.url_file));
    }
    std::remove((options.url_file + ".tmp").c_str());
  }
  const UrlFileWhenReady url_file(options.url_file, url, scheduler);

  LoadedModel loaded = load_model(options, groups, vocab[0], vocab[1]);
  runtime::Engine& engine = *loaded.engine;
  const int64_t kv_tokens = loaded.kv_tokens;
  scheduler.set_kv_cache_tokens(kv_tokens);
  log::info("model {} ({}) served as '{}': {} x {} sequences, KV budget {} tokens per copy, context {}", so.model.source,
            so.model.family, so.model.name, count_of(so.num_copies, "copy", "copies"), so.model.max_batch_size, kv_tokens,
            engine.max_context());
  try {
    scheduler.run(engine, groups);
  } catch (const Error& e) {
    // A failed collective names a connection, not a rank: the watchdog says which rank went away.
    const std::string silent = hook.find_silent_ranks ? hook.find_silent_ranks() : "";
    const std::string reason = silent.empty() ? user_message(e) : fmt::format("{}: {}", silent, user_message(e));
    // Never unwinds past the server: the watchdog thread fails the requests, lets the responses out, exits.
    if (hook.stop_rank) hook.stop_rank(exit_code(e.code()), reason);
    scheduler.fail_all(reason);
    set_done();
    throw Error(e.code(), reason);
  }
  hook.clear_fail_requests();
  set_done();
  stop_servers();
  log::info("server stopped");
}

}  // namespace rankserve::launcher
