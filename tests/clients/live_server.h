// clients tier helpers: a live multi-rank `rankserve serve` on a tiny text checkpoint (started once
// per test executable and stopped at exit), and curl as the HTTP client.
#pragma once

#include <boost/json/value.hpp>

#include <filesystem>
#include <memory>
#include <string>

#include "tests/support/process.h"

namespace rankserve::testing {

inline const std::string kBin = RANKSERVE_BIN;
inline const std::string kClient = RANKSERVE_CLIENT_BIN;
inline const std::string kSource = RANKSERVE_SOURCE_DIR;

// Writes a file holding `text` so shells never have to quote it; returns its path.
std::string text_file(const std::string& name, const std::string& text);

// `rankserve serve <layout> <extra flags>` over a tiny `family` checkpoint with the GPT-2 vocabulary,
// HTTP, metrics and (unless the flags say otherwise) gRPC on free ports, ready when constructed
// (REQUIREs it); SIGTERM, then killed, when destroyed.
struct Server {
  // `prepare` may change the checkpoint in `dir` before the server starts (empty: none).
  Server(const std::string& family, const std::string& layout, const std::string& extra_flags = "",
         const std::string& prepare = "");
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // `rankserve generate` on the same checkpoint: its JSON line for `prompt`.
  boost::json::value generate(const std::string& prompt, int max_tokens) const;
  // The launcher's worker processes still running (one per local rank while all live).
  int num_workers_alive() const;

  std::string family;
  std::filesystem::path dir;
  std::string url;
  int metrics_port = 0;
  int grpc_port = -1;  // -1: no gRPC server (--grpc-port -1)
  std::unique_ptr<Process> process;
};

struct Reply {
  int status = 0;
  std::string body;
};

// curl with `args`: the status code and the body. REQUIREs that curl ran.
Reply curl(const std::string& args);
// POSTs `body` as application/json; `curl_args` adds to the command line (headers, say).
Reply post_json(const std::string& url, const std::string& body, const std::string& curl_args = "");

}  // namespace rankserve::testing
