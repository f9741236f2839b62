// A small blocking HTTP/1.1 client (Boost.Beast) for rankserve-client and the tests.
// One connection per call; every call has a deadline.
#pragma once

#include <chrono>
#include <string>

namespace rankserve::net {

struct Url {
  std::string host;
  std::string port = "80";
  std::string target = "/";  // path prefix from the URL, "" when none
};

// Parses "http://host[:port][/prefix]" or "host:port". Throws Error(usage) naming `flag`.
Url parse_url(const std::string& text, const std::string& flag);

struct HttpResponse {
  int status = 0;
  std::string body;
};

// Throws Error(runtime) with the reason (refused, unresolvable, timeout) when no response arrives.
HttpResponse http_request(const Url& url, const std::string& method, const std::string& target, const std::string& body,
                          std::chrono::milliseconds timeout);

}  // namespace rankserve::net
