#include "net/http_client.h"

#include <fmt/format.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "runtime/core/error.h"

namespace rankserve::net {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

Url parse_url(const std::string& text, const std::string& flag) {
  std::string rest = text;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos) {
    throw Error(ErrorCode::usage, fmt::format("options: {}={} uses a scheme other than http://", flag, text));
  }
  Url url;
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  url.target = slash == std::string::npos ? "" : rest.substr(slash);
  while (!url.target.empty() && url.target.back() == '/') url.target.pop_back();
  const size_t colon = authority.rfind(':');
  url.host = authority.substr(0, colon);
  if (colon != std::string::npos) url.port = authority.substr(colon + 1);
  if (url.host.empty() || url.port.empty() || url.port.find_first_not_of("0123456789") != std::string::npos) {
    throw Error(ErrorCode::usage, fmt::format("options: {}={} is not http://host[:port]", flag, text));
  }
  return url;
}

HttpResponse http_request(const Url& url, const std::string& method, const std::string& target, const std::string& body,
                          std::chrono::milliseconds timeout) {
  boost::asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) throw Error(ErrorCode::runtime, fmt::format("client: cannot resolve {}: {}", url.host, ec.message()));
  stream.expires_after(timeout);  // covers connect, write and read together
  stream.connect(endpoints, ec);
  if (ec) throw Error(ErrorCode::runtime, fmt::format("client: cannot connect to {}:{}: {}", url.host, url.port, ec.message()));
  http::request<http::string_body> request{http::string_to_verb(method), url.target + target, 11};
  request.set(http::field::host, url.host);
  request.set(http::field::user_agent, "rankserve-client");
  if (!body.empty()) {
    request.set(http::field::content_type, "application/json");
    request.body() = body;
  }
  request.prepare_payload();
  http::write(stream, request, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  if (!ec) http::read(stream, buffer, response, ec);
  if (ec) throw Error(ErrorCode::runtime, fmt::format("client: {} {} on {}:{} failed: {}", method, target, url.host, url.port, ec.message()));
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return HttpResponse{static_cast<int>(response.result_int()), response.body()};
}

}  // namespace rankserve::net
