// gRPC against HTTP for the same 1-token KServe infer on the same server, in one run: C concurrent
// clients, each on its own connection (HTTP keep-alive; one gRPC channel per client), for S seconds
// per round, the transports alternating over R rounds. Prints requests/s, p50 and p99 of each and
// the ratio gRPC / HTTP (target: >= 1).
//   grpc_bench HOST HTTP_PORT GRPC_PORT MODEL BODY_JSON [seconds=5] [clients=4] [rounds=2] [both|http|grpc] [own|shared]
// (one transport only: for profiling the server under one of them; no ratio then). `shared`: the gRPC
// clients share one channel (one HTTP/2 connection, as Triton's C++ client caches a channel per URL)
// instead of each opening its own.
// BODY_JSON: the infer body (KServe v2 JSON); the gRPC request carries the same tensors, typed.
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "client/grpc.h"
#include "net/grpc/grpc_service.grpc.pb.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string host, http_port, grpc_port, model, body;
  double seconds = 5;
  int clients = 4, rounds = 2;
  std::string only = "both";
  bool shared_channel = false;
};

struct Round {
  double requests_per_s = 0, p50_ms = 0, p99_ms = 0;
  long failures = 0;
};

Round summarize(std::vector<double>& latencies_ms, double seconds, long failures) {
  Round r;
  r.failures = failures;
  if (latencies_ms.empty()) return r;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  r.requests_per_s = static_cast<double>(latencies_ms.size()) / seconds;
  r.p50_ms = latencies_ms[latencies_ms.size() / 2];
  r.p99_ms = latencies_ms[std::min(latencies_ms.size() - 1, latencies_ms.size() * 99 / 100)];
  return r;
}

// Runs `one` (a request; false when it failed) on each client until the round's end.
template <typename MakeClient>
Round run_round(const Config& c, MakeClient make_client) {
  std::vector<std::vector<double>> per_client(static_cast<size_t>(c.clients));
  std::atomic<long> failures{0};
  const auto end = Clock::now() + std::chrono::duration<double>(c.seconds);
  std::vector<std::thread> threads;
  for (int i = 0; i < c.clients; ++i) {
    threads.emplace_back([&, i] {
      auto one = make_client();
      while (Clock::now() < end) {
        const auto start = Clock::now();
        if (!one()) {
          ++failures;
          continue;
        }
        per_client[static_cast<size_t>(i)].push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& v : per_client) all.insert(all.end(), v.begin(), v.end());
  return summarize(all, c.seconds, failures);
}

auto http_client(const Config& c) {
  return [&c] {
    auto io = std::make_shared<boost::asio::io_context>();
    auto stream = std::make_shared<beast::tcp_stream>(*io);
    tcp::resolver resolver(*io);
    stream->connect(resolver.resolve(c.host, c.http_port));
    http::request<http::string_body> request{http::verb::post, "/v2/models/" + c.model + "/infer", 11};
    request.set(http::field::host, c.host);
    request.set(http::field::content_type, "application/json");
    request.keep_alive(true);
    request.body() = c.body;
    request.prepare_payload();
    return [io, stream, request]() mutable {
      beast::error_code ec;
      http::write(*stream, request, ec);
      beast::flat_buffer buffer;
      http::response<http::string_body> response;
      if (!ec) http::read(*stream, buffer, response, ec);
      return !ec && response.result_int() == 200;
    };
  };
}

std::shared_ptr<grpc::Channel> open_channel(const Config& c) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own per channel
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  return grpc::CreateCustomChannel(c.host + ":" + c.grpc_port, grpc::InsecureChannelCredentials(), args);
}

// A channel per client (or the one shared channel) and a completion queue per client, the calls made
// through the async API and waited for on that queue: the sync stub creates a completion queue per call.
auto grpc_client(const Config& c, std::shared_ptr<grpc::Channel> shared) {
  return [&c, shared] {
    std::shared_ptr<inference::GRPCInferenceService::Stub> stub =
        inference::GRPCInferenceService::NewStub(shared ? shared : open_channel(c));
    auto request = std::make_shared<inference::ModelInferRequest>(rankserve::client::grpc_infer_request(c.model, c.body));
    auto queue = std::make_shared<grpc::CompletionQueue>();
    return [stub, request, queue] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      inference::ModelInferResponse response;
      grpc::Status status;
      auto call = stub->AsyncModelInfer(&context, *request, queue.get());
      call->Finish(&response, &status, &response);
      void* tag = nullptr;
      bool ok = false;
      return queue->Next(&tag, &ok) && ok && tag == &response && status.ok();
    };
  };
}

void print(const char* name, int round, const Round& r) {
  fmt::print("round {} {:<4}: {:8.1f} requests/s, p50 {:6.2f} ms, p99 {:6.2f} ms, {} failed\n", round, name, r.requests_per_s,
             r.p50_ms, r.p99_ms, r.failures);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    fmt::print(stderr,
               "usage: grpc_bench HOST HTTP_PORT GRPC_PORT MODEL BODY_JSON [seconds] [clients] [rounds] [both|http|grpc] "
               "[own|shared]\n");
    return 2;
  }
  Config c{argv[1], argv[2], argv[3], argv[4], argv[5]};
  if (argc > 6) c.seconds = std::stod(argv[6]);
  if (argc > 7) c.clients = std::stoi(argv[7]);
  if (argc > 8) c.rounds = std::stoi(argv[8]);
  if (argc > 9) c.only = argv[9];
  if (argc > 10) c.shared_channel = std::string(argv[10]) == "shared";
  if (c.only != "both" && c.only != "http" && c.only != "grpc") {
    fmt::print(stderr, "grpc_bench: the transport must be both, http or grpc, not '{}'\n", c.only);
    return 2;
  }
  const bool http = c.only != "grpc", grpc = c.only != "http";
  double http_total = 0, grpc_total = 0;
  Round best_http, best_grpc;
  std::vector<double> round_ratios;  // gRPC / HTTP of each round: the two ran back to back, under the same load
  for (int i = 0; i < c.rounds; ++i) {
    const Round h = http ? run_round(c, http_client(c)) : Round{};
    const Round g = grpc ? run_round(c, grpc_client(c, c.shared_channel ? open_channel(c) : nullptr)) : Round{};
    if (http) print("http", i, h);
    if (grpc) print("grpc", i, g);
    http_total += h.requests_per_s;
    grpc_total += g.requests_per_s;
    if (h.requests_per_s > best_http.requests_per_s) best_http = h;
    if (g.requests_per_s > best_grpc.requests_per_s) best_grpc = g;
    if (h.requests_per_s > 0) round_ratios.push_back(g.requests_per_s / h.requests_per_s);
  }
  if (http) {
    fmt::print("http: {:.1f} requests/s (best round p50 {:.2f} ms, p99 {:.2f} ms)\n", http_total / c.rounds, best_http.p50_ms,
               best_http.p99_ms);
  }
  if (grpc) {
    fmt::print("grpc: {:.1f} requests/s (best round p50 {:.2f} ms, p99 {:.2f} ms)\n", grpc_total / c.rounds, best_grpc.p50_ms,
               best_grpc.p99_ms);
  }
  if (http && grpc) {
    std::sort(round_ratios.begin(), round_ratios.end());
    const double median = round_ratios.empty() ? 0.0 : round_ratios[round_ratios.size() / 2];
    fmt::print(
        "grpc / http requests/s: {:.2f} over all rounds, {:.2f} the median round (target >= 1), {} clients ({}), {} "
        "rounds of {} s each\n",
        http_total > 0 ? grpc_total / http_total : 0.0, median, c.clients,
        c.shared_channel ? "one shared gRPC channel" : "a gRPC channel each", c.rounds, c.seconds);
  }
  return 0;
}
