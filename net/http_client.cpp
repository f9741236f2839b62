#include "net/http_client.h"

#include <fmt/format.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "core/error.h"

namespace rankserve::net {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
namespace ssl = boost::asio::ssl;

Url parse_url(const std::string& text, const std::string& flag) {
  std::string rest = text;
  Url url;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.rfind("https://", 0) == 0) {
    rest = rest.substr(8);
    url.tls = true;
    url.port = "443";
  } else if (rest.find("://") != std::string::npos) {
    throw Error(ErrorCode::usage, fmt::format("options: {}={} uses a scheme other than http:// or https://", flag, text));
  }
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  url.target = slash == std::string::npos ? "" : rest.substr(slash);
  while (!url.target.empty() && url.target.back() == '/') url.target.pop_back();
  const size_t colon = authority.rfind(':');
  url.host = authority.substr(0, colon);
  if (colon != std::string::npos) url.port = authority.substr(colon + 1);
  if (url.host.empty() || url.port.empty() || url.port.size() > 5 ||
      url.port.find_first_not_of("0123456789") != std::string::npos || std::stoul(url.port) > 65535) {
    throw Error(ErrorCode::usage, fmt::format("options: {}={} is not http[s]://host[:port]", flag, text));
  }
  return url;
}

std::string to_string(const Url& url) {
  return fmt::format("{}://{}:{}{}", url.tls ? "https" : "http", url.host, url.port, url.target);
}

namespace {

// The endpoints of url's host, by the deadline. getaddrinfo cannot be cancelled (asio's resolver
// only discards its answer, and its io_context waits for the call to return), so a name is looked up
// on a thread of its own that is left behind at the deadline. Numeric addresses need no lookup.
std::vector<tcp::endpoint> resolve_by(const Url& url, std::chrono::steady_clock::time_point deadline) {
  const auto port = static_cast<uint16_t>(std::stoul(url.port));
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(url.host, ec);
  if (!ec) return {tcp::endpoint(address, port)};

  struct Lookup {
    std::promise<std::vector<tcp::endpoint>> answer;
  };
  auto lookup = std::make_shared<Lookup>();
  std::future<std::vector<tcp::endpoint>> answer = lookup->answer.get_future();
  std::thread([lookup, host = url.host, port] {
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    boost::system::error_code e;
    const auto results = resolver.resolve(host, std::to_string(port), e);
    if (e) {
      lookup->answer.set_exception(std::make_exception_ptr(boost::system::system_error(e)));
      return;
    }
    std::vector<tcp::endpoint> out;
    for (const auto& r : results) out.push_back(r.endpoint());
    lookup->answer.set_value(std::move(out));
  }).detach();
  if (answer.wait_until(deadline) != std::future_status::ready) {
    throw Error(ErrorCode::runtime,
                fmt::format("client: cannot resolve the host of {}: no answer before the deadline", to_string(url)));
  }
  try {
    return answer.get();
  } catch (const boost::system::system_error& e) {
    throw Error(ErrorCode::runtime, fmt::format("client: cannot resolve the host of {}: {}", to_string(url), e.code().message()));
  }
}

// A connected stream whose deadline covers everything done on it afterwards. Every operation is
// asynchronous, run to completion on the calling thread: beast::tcp_stream's expiry applies to
// asynchronous operations only
// (https://www.boost.org/doc/libs/1_81_0/libs/beast/doc/html/beast/using_io/timeouts.html).
class Connection {
 public:
  Connection(const Url& url, std::chrono::milliseconds timeout) : url_(url) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::vector<tcp::endpoint> endpoints = resolve_by(url, deadline);
    beast::error_code ec;
    stream_.expires_at(deadline);  // covers connect, write and read together
    stream_.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (ec) {
      throw Error(ErrorCode::runtime, fmt::format("client: cannot connect to {}: {}", to_string(url),
                                                  ec == beast::error::timeout ? "no answer before the deadline" : ec.message()));
    }
    if (url.tls) handshake();
  }

  ~Connection() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  // Starts one asynchronous operation with `start(stream, handler)` on the TCP or the TLS stream and
  // runs it to completion.
  template <typename Start>
  beast::error_code complete(Start&& start) {
    beast::error_code ec;
    auto handler = [&ec](beast::error_code e, std::size_t) { ec = e; };
    if (tls_) start(*tls_, handler);
    else start(stream_, handler);
    run();
    return ec;
  }

 private:
  // TLS with the system's trust store (OpenSSL's default paths; SSL_CERT_FILE / SSL_CERT_DIR override),
  // the peer's certificate checked against the URL's host name, which also goes out as SNI.
  void handshake() {
    tls_context_.set_default_verify_paths();
    tls_context_.set_verify_mode(ssl::verify_peer);
    tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream&>>(stream_, tls_context_);
    if (!SSL_set_tlsext_host_name(tls_->native_handle(), url_.host.c_str())) {
      throw Error(ErrorCode::runtime, fmt::format("client: cannot set the TLS server name {}", url_.host));
    }
    tls_->set_verify_callback(ssl::host_name_verification(url_.host));
    beast::error_code ec;
    tls_->async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
    run();
    if (ec) {
      throw Error(ErrorCode::runtime, fmt::format("client: TLS with {} failed: {}{}", to_string(url_),
                                                  ec == beast::error::timeout ? "no answer before the deadline" : ec.message(),
                                                  ec.category() == boost::asio::error::get_ssl_category()
                                                      ? " (a private CA's certificate goes in SSL_CERT_FILE)"
                                                      : ""));
    }
  }

  void run() {
    io_.restart();
    io_.run();
  }

  Url url_;
  boost::asio::io_context io_;
  beast::tcp_stream stream_{io_};
  ssl::context tls_context_{ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream&>> tls_;  // https only; closed with the socket, no close_notify
};

http::request<http::string_body> make_request(const Url& url, const HttpRequest& request) {
  http::request<http::string_body> out{http::string_to_verb(request.method), url.target + request.target, 11};
  out.set(http::field::host, url.host);
  out.set(http::field::user_agent, "rankserve-client");
  for (const auto& [name, value] : request.headers) out.set(name, value);
  if (!request.body.empty()) {
    out.set(http::field::content_type, "application/json");
    out.body() = request.body;
  }
  out.prepare_payload();
  return out;
}

Error exchange_failed(const Url& url, const HttpRequest& request, const beast::error_code& ec) {
  const bool timed_out = ec == beast::error::timeout;
  return Error(ErrorCode::runtime, fmt::format("client: {} {}{} failed: {}", request.method, to_string(url), request.target,
                                               timed_out ? "no complete answer before the deadline" : ec.message()));
}

template <typename Fields>
std::vector<std::pair<std::string, std::string>> header_list(const Fields& fields) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& field : fields) out.emplace_back(std::string(field.name_string()), std::string(field.value()));
  return out;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (boost::beast::iequals(key, name)) return value;
  }
  return "";
}

HttpResponse http_request(const Url& url, const HttpRequest& request, std::chrono::milliseconds timeout) {
  Connection connection(url, timeout);
  const auto message = make_request(url, request);
  beast::error_code ec = connection.complete([&](auto& stream, auto handler) { http::async_write(stream, message, handler); });
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  if (!ec) ec = connection.complete([&](auto& stream, auto handler) { http::async_read(stream, buffer, response, handler); });
  if (ec) throw exchange_failed(url, request, ec);
  return HttpResponse{static_cast<int>(response.result_int()), response.body(), header_list(response.base())};
}

HttpResponse http_request(const Url& url, const std::string& method, const std::string& target, const std::string& body,
                          std::chrono::milliseconds timeout) {
  return http_request(url, HttpRequest{method, target, body, {}}, timeout);
}

HttpResponse http_request_stream(const Url& url, const HttpRequest& request, std::chrono::milliseconds timeout,
                                 const BodyChunkSink& on_chunk, const HeadSink& on_head) {
  Connection connection(url, timeout);
  const auto message = make_request(url, request);
  beast::error_code ec = connection.complete([&](auto& stream, auto handler) { http::async_write(stream, message, handler); });
  if (ec) throw exchange_failed(url, request, ec);

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // a stream's length is bounded by the deadline, not by a byte count
  ec = connection.complete([&](auto& stream, auto handler) { http::async_read_header(stream, buffer, parser, handler); });
  if (ec) throw exchange_failed(url, request, ec);
  HttpResponse response{static_cast<int>(parser.get().result_int()), {}, header_list(parser.get().base())};
  const bool success = response.status >= 200 && response.status < 300;
  if (success && on_head) on_head(response);

  // The Beast idiom for reading a body incrementally: point buffer_body at our array, read_some,
  // and whatever it filled is the next piece ("need_buffer" only says the array is full).
  std::array<char, 16 * 1024> piece;
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    ec = connection.complete([&](auto& stream, auto handler) { http::async_read_some(stream, buffer, parser, handler); });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) throw exchange_failed(url, request, ec);
    const size_t filled = piece.size() - parser.get().body().size;
    if (filled == 0) continue;
    const std::string_view chunk(piece.data(), filled);
    if (!success) {
      response.body.append(chunk);
    } else if (!on_chunk(chunk)) {
      break;  // the caller has what it wanted: close rather than drain the rest of the stream
    }
  }
  return response;
}

}  // namespace rankserve::net
