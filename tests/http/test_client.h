// HTTP clients for the http tier: whole requests with any headers (Beast, blocking, with a
// deadline), SSE event splitting, and a raw TCP connection for framing-level checks.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/value.hpp>

#include "net/http_server.h"
#include "tests/http/fake_service.h"

namespace rankserve::testing {

using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  mutable std::optional<boost::json::value> parsed;  // json() caches here

  // The body parsed (once; the reference lives as long as the Reply); fails the test when it is not JSON.
  const boost::json::value& json() const;
  std::string header(const std::string& name) const;  // "" when absent
};

// One request on a fresh connection. Throws std::runtime_error when no response arrives in time.
Reply send_request(int port, const std::string& method, const std::string& target, const std::string& body = "",
                   const std::map<std::string, std::string>& headers = {}, std::chrono::milliseconds timeout = 10s);

// The `data:` payloads of an SSE body, in order; fails the test on a frame that is not `data: ...\n\n`.
std::vector<std::string> sse_data(const std::string& body);

// The data of each chunk of a chunked body (`Transfer-Encoding: chunked`), in order, without the
// last (empty) chunk; fails the test when the body is not chunked framing ended by its last chunk.
std::vector<std::string> http_chunks(const std::string& body);

// A plain TCP connection to 127.0.0.1:port.
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  void write(const std::string& bytes);
  // Reads until the server closes the connection or `deadline` passes; returns what arrived and
  // whether the connection was closed.
  std::pair<std::string, bool> read_until_close(std::chrono::milliseconds deadline);
  // Reads until `marker` has arrived (or the deadline); returns everything read.
  std::string read_until(const std::string& marker, std::chrono::milliseconds deadline);
  void shutdown_send();  // ends the stream the server reads (a half-close); replies can still arrive
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What a raw exchange got back: the bytes, and whether the server closed the connection.
struct RawReply {
  std::string text;
  bool closed = false;
  int status() const;        // from the status line; 0 when there is none
  std::string body() const;  // after the header; "" when there is none
};

// Writes `bytes` on a fresh connection, half-closes it when `end_stream`, and reads until the server
// closes it (or `deadline`). For framing checks Beast's client would refuse to send.
RawReply send_raw(int port, const std::string& bytes, bool end_stream = false, std::chrono::milliseconds deadline = 5s);

// An in-process server on 127.0.0.1 with free ports over a FakeService.
struct TestServer {
  explicit TestServer(ModelInfo model = gpt_model_info(), net::ServerOptions options = default_options());
  static net::ServerOptions default_options();

  Reply get(const std::string& target, const std::map<std::string, std::string>& headers = {}) {
    return send_request(server.http_port(), "GET", target, "", headers);
  }
  Reply post(const std::string& target, const std::string& body, const std::map<std::string, std::string>& headers = {}) {
    return send_request(server.http_port(), "POST", target, body, headers);
  }

  FakeService service;
  net::HttpServer server;
};

}  // namespace rankserve::testing
