#include "tests/http/test_client.h"

#include <doctest/doctest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

#include <charconv>
#include <stdexcept>

namespace rankserve::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

const boost::json::value& Reply::json() const {
  if (!parsed) {
    boost::json::error_code ec;
    parsed = boost::json::parse(body, ec);
    if (ec) FAIL("response body is not JSON: " << body);
  }
  return *parsed;
}

std::string Reply::header(const std::string& name) const {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = headers.find(lower);
  return it == headers.end() ? "" : it->second;
}

Reply send_request(int port, const std::string& method, const std::string& target, const std::string& body,
                   const std::map<std::string, std::string>& headers, std::chrono::milliseconds timeout) {
  // Asynchronous operations, because beast::tcp_stream applies its deadline only to those.
  asio::io_context io;
  beast::tcp_stream stream(io);
  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, "127.0.0.1");
  bool has_type = false;
  for (const auto& [name, value] : headers) {
    request.set(name, value);
    has_type = has_type || beast::iequals(name, "content-type");
  }
  if (!body.empty() && !has_type) request.set(http::field::content_type, "application/json");
  request.body() = body;
  request.prepare_payload();
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  beast::error_code error;
  std::string step = "connect";
  stream.expires_after(timeout);  // connect, write and read together
  stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
                       [&](beast::error_code ec) {
                         if (ec) {
                           error = ec;
                           return;
                         }
                         step = "write";
                         http::async_write(stream, request, [&](beast::error_code ec, size_t) {
                           if (ec) {
                             error = ec;
                             return;
                           }
                           step = "read";
                           http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) { error = ec; });
                         });
                       });
  io.run();
  if (error) throw std::runtime_error(method + " " + target + ": " + step + " failed: " + error.message());
  Reply reply;
  reply.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    reply.headers[name] = std::string(field.value());
  }
  reply.body = parser.get().body();
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return reply;
}

std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) FAIL("SSE body has an unterminated frame: " << body.substr(pos));
    const std::string frame = body.substr(pos, end - pos);
    if (frame.rfind("data: ", 0) != 0 || frame.find('\n') != std::string::npos) FAIL("not a single data line: " << frame);
    out.push_back(frame.substr(6));
    pos = end + 2;
  }
  return out;
}

std::vector<std::string> http_chunks(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    const size_t line_end = body.find("\r\n", pos);
    if (line_end == std::string::npos) FAIL("a chunk size line does not end: " << body.substr(pos));
    const std::string size_text = body.substr(pos, line_end - pos);
    size_t size = 0;
    const auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
    if (ec != std::errc() || end != size_text.data() + size_text.size()) FAIL("not a chunk size: '" << size_text << "'");
    pos = line_end + 2;
    if (size == 0) {
      if (body.substr(pos) != "\r\n") FAIL("the last chunk is not followed by an empty trailer: " << body.substr(pos));
      return out;
    }
    if (body.size() < pos + size + 2 || body.compare(pos + size, 2, "\r\n") != 0)
      FAIL("a chunk is cut short or not ended by CRLF");
    out.push_back(body.substr(pos, size));
    pos += size + 2;
  }
}

struct RawConnection::Impl {
  asio::io_context io;
  tcp::socket socket{io};
};

RawConnection::RawConnection(int port) : impl_(std::make_unique<Impl>()) {
  impl_->socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
}

RawConnection::~RawConnection() { close(); }

void RawConnection::write(const std::string& bytes) { asio::write(impl_->socket, asio::buffer(bytes)); }

std::pair<std::string, bool> RawConnection::read_until_close(std::chrono::milliseconds deadline) {
  std::string out;
  bool closed = false;
  char chunk[4096];
  impl_->io.restart();
  asio::steady_timer timer(impl_->io, deadline);
  bool expired = false;
  timer.async_wait([&](beast::error_code ec) {
    if (!ec) {
      expired = true;
      impl_->socket.cancel();
    }
  });
  std::function<void()> read_more = [&] {
    impl_->socket.async_read_some(asio::buffer(chunk), [&](beast::error_code ec, size_t n) {
      out.append(chunk, n);
      if (ec) {
        closed = !expired;
        timer.cancel();
        return;
      }
      read_more();
    });
  };
  read_more();
  impl_->io.run();
  return {out, closed};
}

std::string RawConnection::read_until(const std::string& marker, std::chrono::milliseconds deadline) {
  std::string out;
  char chunk[4096];
  impl_->io.restart();
  asio::steady_timer timer(impl_->io, deadline);
  timer.async_wait([&](beast::error_code ec) {
    if (!ec) impl_->socket.cancel();
  });
  std::function<void()> read_more = [&] {
    impl_->socket.async_read_some(asio::buffer(chunk), [&](beast::error_code ec, size_t n) {
      out.append(chunk, n);
      if (ec || out.find(marker) != std::string::npos) {
        timer.cancel();
        return;
      }
      read_more();
    });
  };
  read_more();
  impl_->io.run();
  return out;
}

void RawConnection::shutdown_send() {
  beast::error_code ignored;
  impl_->socket.shutdown(tcp::socket::shutdown_send, ignored);
}

int RawReply::status() const {
  if (text.rfind("HTTP/1.1 ", 0) != 0 || text.size() < 12) return 0;
  return std::stoi(text.substr(9, 3));
}

std::string RawReply::body() const {
  const size_t end = text.find("\r\n\r\n");
  return end == std::string::npos ? "" : text.substr(end + 4);
}

RawReply send_raw(int port, const std::string& bytes, bool end_stream, std::chrono::milliseconds deadline) {
  RawConnection c(port);
  c.write(bytes);
  if (end_stream) c.shutdown_send();
  auto [text, closed] = c.read_until_close(deadline);
  return RawReply{std::move(text), closed};
}

void RawConnection::close() {
  beast::error_code ignored;
  if (impl_ && impl_->socket.is_open()) {
    impl_->socket.shutdown(tcp::socket::shutdown_both, ignored);
    impl_->socket.close(ignored);
  }
}

net::ServerOptions TestServer::default_options() {
  net::ServerOptions o;
  o.address = "127.0.0.1";
  o.http_port = 0;
  o.metrics_port = 0;
  o.num_threads = 2;
  o.request_timeout_s = 30;
  return o;
}

TestServer::TestServer(ModelInfo model, net::ServerOptions options) : service(std::move(model)), server(options, service) {}

}  // namespace rankserve::testing
