// A small blocking HTTP/1.1 client (Boost.Beast, OpenSSL for https) for rankserve-client, the hub
// downloads (launcher/hub_download.cpp) and the tests.
// One connection per call; every call has a deadline.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rankserve::net {

struct Url {
  bool tls = false;  // https: TLS, the peer's certificate verified against the system's trust store
  std::string host;
  std::string port = "80";
  std::string target = "/";  // path prefix from the URL, "" when none
};

// Parses "http[s]://host[:port][/prefix]" or "host:port" (http). Throws Error(usage) naming `flag`.
Url parse_url(const std::string& text, const std::string& flag);

// "http[s]://host:port[/prefix]", for messages.
std::string to_string(const Url& url);

struct HttpRequest {
  std::string method = "GET";
  std::string target;                                        // appended to the URL's path prefix, e.g. "/v2/health/ready"
  std::string body;                                          // sent as application/json when not empty
  std::vector<std::pair<std::string, std::string>> headers;  // extra fields, e.g. Authorization
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, names as sent

  // The first field named `name` (case-insensitive), or "" when absent.
  std::string header(std::string_view name) const;
};

// Sends `request` and reads the whole response within `timeout` (connect, write and read together).
// Throws Error(runtime) with the reason (refused, unresolvable, timeout) when no response arrives.
HttpResponse http_request(const Url& url, const HttpRequest& request, std::chrono::milliseconds timeout);

HttpResponse http_request(const Url& url, const std::string& method, const std::string& target, const std::string& body,
                          std::chrono::milliseconds timeout);

// Receives body bytes as they arrive (de-chunked); returns false to stop reading and close the connection.
using BodyChunkSink = std::function<bool(std::string_view chunk)>;

// Streaming variant for server-sent events: sends `request`, then, when the status is 2xx, calls
// `on_chunk` with each piece of the body as it arrives (chunked, sized or close-delimited bodies).
// A non-2xx body is not streamed: it is read whole into the returned body (an error message).
// `timeout` is the deadline of the whole exchange, stream included. Exceptions thrown by `on_chunk`
// propagate. Blocks the calling thread; throws Error(runtime) like http_request, also when the
// deadline passes mid-stream. `on_head`, when given, gets the status and headers of a 2xx response
// before its first chunk (to pick where the body goes, e.g. after a Range request).
using HeadSink = std::function<void(const HttpResponse& head)>;
HttpResponse http_request_stream(const Url& url, const HttpRequest& request, std::chrono::milliseconds timeout,
                                 const BodyChunkSink& on_chunk, const HeadSink& on_head = {});

}  // namespace rankserve::net
