// rankserve-client: waits until a rankserve (or any KServe v2) server is ready.
// Sending prompts arrives with the serving front end; until then this is the readiness probe
// batch scripts use (`rankserve-client --url URL --init-timeout-s 600`).
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "net/http_client.h"
#include "runtime/core/error.h"
#include "runtime/core/log.h"

namespace po = boost::program_options;
using namespace rankserve;

namespace {

int run(int argc, char** argv) {
  std::string url_text;
  double init_timeout_s = 600;
  po::options_description desc("Usage: rankserve-client --url http://host:8000 [options]", 100);
  // clang-format off
  desc.add_options()
    ("help,h", "Print this help and exit.")
    ("url", po::value<std::string>(&url_text), "Server URL, e.g. http://node01:8000 (the NeMo client's flag).")
    ("server-url", po::value<std::string>(), "Alias of --url (the OPT client's flag).")
    ("init-timeout-s", po::value<double>(&init_timeout_s)->default_value(init_timeout_s),
     "Seconds to wait for /v2/health/ready to answer 200 before giving up.");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorCode::usage, fmt::format("options: {} (see rankserve-client --help)", e.what()));
  }
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  if (vm.count("server-url")) url_text = vm["server-url"].as<std::string>();
  if (url_text.empty()) throw Error(ErrorCode::usage, "options: --url is required (e.g. --url http://localhost:8000)");
  if (!(init_timeout_s > 0)) throw Error(ErrorCode::usage, fmt::format("options: --init-timeout-s={} must be > 0", init_timeout_s));
  const net::Url url = net::parse_url(url_text, "--url");

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(init_timeout_s);
  std::string last_problem;
  while (Clock::now() < deadline) {
    try {
      net::HttpResponse response = net::http_request(url, "GET", "/v2/health/ready", "", std::chrono::seconds(5));
      if (response.status == 200) {
        std::printf("server %s is ready\n", url_text.c_str());
        return 0;
      }
      last_problem = fmt::format("/v2/health/ready answered {}", response.status);
    } catch (const Error& e) {
      last_problem = e.what();
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // the client polls; the server never does
  }
  throw Error(ErrorCode::runtime, fmt::format("client: server {} not ready within --init-timeout-s={} s; last: {}", url_text,
                                              init_timeout_s, last_problem));
}

}  // namespace

int main(int argc, char** argv) {
  log::Config config;
  config.host = "client";
  log::configure(config);
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    log::fatal("{}", e.what());
    return exit_code(e.code());
  }
}
