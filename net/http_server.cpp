// The Beast side of HttpServer: listeners, one coroutine per connection (on its own strand), the
// HTTP/1.1 framing with its limits and timeouts, and the Exchange the handlers answer through.
#include "net/http_server.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/log.h"
#include "net/content_encoding.h"
#include "net/errors.h"
#include "net/exchange.h"
#include "net/http_request_parser.h"
#include "net/router.h"
#include "net/server_context.h"

namespace rankserve::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);

namespace {

// Bytes read per read_some while waiting for a request's first byte.
constexpr size_t kReadChunk = 4096;
// Threads that run GenerationService::submit (the service tokenizes there: a multi-megabyte prompt
// takes a while), so the I/O threads keep answering health checks and other connections meanwhile.
// Two: one long submit does not hold up the next request's, and the engine keeps the other cores.
constexpr size_t kNumSubmitThreads = 2;
// How long stop() lets connections unwind after cancelling them, before it stops the threads.
constexpr auto kStopGrace = std::chrono::seconds(5);

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

// Built outside coroutine bodies: GCC 12 miscompiles braced initializers with string literals there.
ErrorDetail status_detail(int status) {
  ErrorDetail detail;
  detail.status = status;
  return detail;
}

}  // namespace

// Everything the listeners and connections share; HttpServer::Impl is this.
struct ServerCore {
  struct SessionHandle {
    asio::any_io_executor strand;
    std::shared_ptr<asio::cancellation_signal> signal;
    std::shared_ptr<std::atomic<bool>> busy;  // between a request's header and the end of its response
  };

  ServerCore(const ServerOptions& o, GenerationService& s) : options(o), service(s), io(std::max(o.num_threads, 1)) {}

  void spawn_session(tcp::socket socket, bool metrics_port);
  void bind(std::optional<tcp::acceptor>& acceptor, int port, std::string_view flag, std::vector<std::string>& failures);
  asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, bool metrics_port);

  ServerOptions options;
  GenerationService& service;
  Metrics metrics;
  InflightRequests inflight;
  ServerContext context{options, service, metrics, inflight, work_pool};  // work_pool is bound here, built below

  std::mutex sessions_mutex;
  std::condition_variable sessions_changed;
  std::unordered_map<uint64_t, SessionHandle> sessions;
  uint64_t next_session_id = 0;
  std::atomic<bool> stopping = false;  // set once: sessions finish the request they serve, then close

  // Declared after everything the coroutines touch, so it is destroyed (with any frames left) first.
  asio::io_context io;
  // Declared after io, so it is destroyed before it: a submit still queued here (never run once
  // stop() joined the pool) holds a connection's frame, whose timers belong to io.
  asio::thread_pool work_pool{kNumSubmitThreads};
  std::optional<tcp::acceptor> http_acceptor;
  std::optional<tcp::acceptor> metrics_acceptor;
  std::vector<std::thread> threads;
  int bound_http_port = -1;  // the ports bound, kept for after stop() closed the acceptors
  int bound_metrics_port = -1;
  bool stopped = false;
};

struct HttpServer::Impl : ServerCore {
  using ServerCore::ServerCore;
};

namespace {

// One connection: reads requests one after another (keep-alive) and is the Exchange of each.
class Session final : public Exchange {
 public:
  Session(ServerCore& server, tcp::socket socket, bool metrics_port, std::shared_ptr<std::atomic<bool>> busy)
      : server_(server),
        options_(server.options),
        executor_(socket.get_executor()),
        stream_(std::move(socket)),
        metrics_port_(metrics_port),
        busy_(std::move(busy)) {}

  asio::awaitable<void> run();

  const ServerRequest& request() const override { return request_; }
  asio::any_io_executor executor() const override { return executor_; }
  Task<void> respond(ServerResponse response) override;
  Task<void> begin_stream(int status, std::string content_type, HeaderList headers) override;
  Task<void> write_chunk(std::string data) override;
  Task<void> end_stream() override;
  bool streaming() const override { return streaming_; }
  bool responded() const override { return status_ != 0; }
  int status() const override { return status_; }
  Task<void> watch_client(Task<void> operation) override;

 private:
  Task<bool> wait_until_client_gone();
  // Answers a request that never reached a handler (too large, malformed) and closes.
  Task<void> reject(ErrorDetail detail, ErrorCode code, const std::string& message, std::string_view path);

  ServerCore& server_;
  const ServerOptions& options_;
  asio::any_io_executor executor_;  // the connection's strand
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool metrics_port_;
  std::shared_ptr<std::atomic<bool>> busy_;

  // Per request.
  ServerRequest request_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool streaming_ = false;
  bool watching_ = true;
  int status_ = 0;
  std::optional<http::response<http::empty_body>> stream_header_;
  std::optional<http::response_serializer<http::empty_body>> stream_serializer_;
};

Task<void> Session::respond(ServerResponse response) {
  http::response<http::string_body> res{static_cast<http::status>(response.status), version_};
  res.set(http::field::server, "rankserve");
  res.set(http::field::content_type, response.content_type);
  for (const auto& [name, value] : response.headers) res.set(name, value);
  if (response.body.size() >= kMinCompressedResponseBytes && accepts_gzip(request_.header("Accept-Encoding"))) {
    // As Triton compresses for tritonclient: the whole body, Inference-Header-Content-Length still
    // counting the uncompressed JSON (clients inflate before they split).
    res.body() = gzip_compress(response.body);
    res.set(http::field::content_encoding, "gzip");
    res.set(http::field::vary, "Accept-Encoding");
  } else {
    res.body() = std::move(response.body);
  }
  res.keep_alive(keep_alive_);
  res.prepare_payload();
  status_ = response.status;
  stream_.expires_after(seconds(options_.write_timeout_s));
  auto [ec, bytes] = co_await http::async_write(stream_, res, kTuple);
  stream_.expires_never();
  if (ec) throw ClientGone{};
}

Task<void> Session::begin_stream(int status, std::string content_type, HeaderList headers) {
  stream_header_.emplace(static_cast<http::status>(status), version_);
  stream_header_->set(http::field::server, "rankserve");
  stream_header_->set(http::field::content_type, content_type);
  for (const auto& [name, value] : headers) stream_header_->set(name, value);
  stream_header_->keep_alive(keep_alive_);
  stream_header_->chunked(true);
  stream_serializer_.emplace(*stream_header_);
  status_ = status;
  streaming_ = true;
  stream_.expires_after(seconds(options_.write_timeout_s));
  auto [ec, bytes] = co_await http::async_write_header(stream_, *stream_serializer_, kTuple);
  stream_.expires_never();
  if (ec) throw ClientGone{};
}

Task<void> Session::write_chunk(std::string data) {
  if (data.empty()) co_return;  // an empty chunk would end the body
  stream_.expires_after(seconds(options_.write_timeout_s));
  auto [ec, bytes] = co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data)), kTuple);
  stream_.expires_never();
  if (ec) throw ClientGone{};
}

Task<void> Session::end_stream() {
  stream_.expires_after(seconds(options_.write_timeout_s));
  auto [ec, bytes] = co_await asio::async_write(stream_, http::make_chunk_last(), kTuple);
  stream_.expires_never();
  if (ec) throw ClientGone{};
}

// True when the client closed or reset the connection; false when it sent data (a pipelined
// request, left unread for the next read) or the wait was cancelled.
Task<bool> Session::wait_until_client_gone() {
  for (;;) {
    auto [ec] = co_await stream_.socket().async_wait(tcp::socket::wait_read, kTuple);
    if (ec) co_return ec != asio::error::operation_aborted;
    // Never a blocking read here: a wait may report readiness that is gone by now, and a blocking
    // peek would then hold the connection's strand (and its engine events) until the client acts.
    char byte = 0;
    const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) co_return false;
    if (n == 0) co_return true;                                               // orderly close
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;  // stale readiness: wait again
    co_return true;                                                           // reset or another socket error
  }
}

Task<void> Session::watch_client(Task<void> operation) {
  using namespace asio::experimental::awaitable_operators;
  if (!watching_) {
    co_await std::move(operation);
    co_return;
  }
  auto result = co_await (std::move(operation) || wait_until_client_gone());
  if (result.index() == 1) {
    if (std::get<1>(result)) throw ClientGone{};
    watching_ = false;  // the client sent more: stop watching, it cannot be told apart from a close now
  }
}

Task<void> Session::reject(ErrorDetail detail, ErrorCode code, const std::string& message, std::string_view path) {
  const Surface surface = path.substr(0, 4) == "/v1/" ? Surface::openai : Surface::kserve;
  const ErrorReply reply = classify_error(std::make_exception_ptr(HttpError(code, message, std::move(detail))), options_);
  log::warn("http: {} {} -> {}: {}", request_.method.empty() ? "-" : request_.method, path.empty() ? "-" : path, reply.status,
            reply.message);
  server_.metrics.count_http_request("unmatched", reply.status);
  keep_alive_ = false;
  try {
    co_await respond(error_response(surface, reply));
  } catch (const ClientGone&) {
  }
}

asio::awaitable<void> Session::run() {
  beast::error_code ignored;
  stream_.socket().set_option(tcp::no_delay(true), ignored);  // streamed tokens go out at once
  bool first = true;
  for (;;) {
    // A new connection must send its header within the header timeout; a kept-alive one may stay
    // silent for the idle timeout before its next request starts.
    if (buffer_.size() == 0) {
      stream_.expires_after(seconds(first ? options_.header_timeout_s : options_.idle_timeout_s));
      auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), kTuple);
      if (ec) break;  // closed, reset or idle: nothing to answer
      buffer_.commit(n);
    }
    first = false;

    request_ = ServerRequest{};
    version_ = 11;
    keep_alive_ = false;
    streaming_ = false;
    watching_ = true;
    status_ = 0;
    stream_serializer_.reset();
    stream_header_.reset();

    RequestParser parser;
    limit_request_header(parser);
    stream_.expires_after(seconds(options_.header_timeout_s));
    {
      auto [ec, n] = co_await http::async_read_header(stream_, buffer_, parser, kTuple);
      if (ec == http::error::header_limit) {
        co_await reject(status_detail(431), ErrorCode::bad_request,
                        fmt::format("http: the request header exceeds {} bytes", kMaxHeaderBytes), "");
        break;
      }
      if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
        break;  // slow or gone: close without a word (slowloris protection)
      }
      if (ec) {
        co_await reject(status_detail(400), ErrorCode::bad_request, fmt::format("http: malformed request: {}", ec.message()), "");
        break;
      }
    }
    busy_->store(true);
    const auto& header = parser.get();
    request_.method = std::string(header.method_string());
    const std::string_view target = header.target();
    const size_t question = target.find('?');
    request_.path = std::string(target.substr(0, question));
    request_.query = question == std::string_view::npos ? "" : std::string(target.substr(question + 1));
    version_ = header.version();
    keep_alive_ = header.keep_alive();
    if (const std::optional<FramingError> framing = transfer_encoding_error(header)) {
      co_await reject(status_detail(framing->status), ErrorCode::bad_request, framing->message, request_.path);
      break;
    }

    if (!limit_request_body(parser, options_.max_body_bytes)) {
      co_await reject(
          status_detail(413), ErrorCode::bad_request,
          fmt::format("http: the body has {} bytes; at most {} are accepted", *parser.content_length(), options_.max_body_bytes),
          request_.path);
      break;
    }
    if (beast::iequals(header[http::field::expect], "100-continue")) {
      // curl sends large bodies only after this (or after a 1 s wait).
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(seconds(options_.write_timeout_s));
      auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(kContinue), kTuple);
      if (ec) break;
    }
    if (!parser.is_done()) {
      stream_.expires_after(seconds(options_.body_timeout_s));
      auto [ec, n] = co_await http::async_read(stream_, buffer_, parser, kTuple);
      if (ec == http::error::body_limit) {
        co_await reject(status_detail(413), ErrorCode::bad_request,
                        fmt::format("http: the body exceeds {} bytes", options_.max_body_bytes), request_.path);
        break;
      }
      if (ec == beast::error::timeout || ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
        break;  // slow or gone mid-body: close without a word
      }
      if (ec) {
        // A bad chunk size or extension, a chunk without its CRLF, or a body cut short by the
        // client's end of stream: the rest of the connection cannot be framed, so answer and close.
        co_await reject(status_detail(400), ErrorCode::bad_request,
                        fmt::format("http: the request body is malformed ({}); expected a complete body of its "
                                    "Content-Length or chunked framing (check the client's body encoding)",
                                    ec.message()),
                        request_.path);
        break;
      }
    }
    stream_.expires_never();  // handlers bound their own waits (write timeout, request deadline)
    http::request<http::string_body> message = parser.release();
    for (const auto& field : message) request_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    request_.body = std::move(message.body());
    if (std::optional<ContentEncodingError> failed =
            decode_content_encoding(request_.header("Content-Encoding"), request_.body, options_.max_body_bytes)) {
      // The body was read whole, but a request that cannot be decoded is answered like one that cannot be framed.
      co_await reject(status_detail(failed->status), ErrorCode::bad_request, failed->message, request_.path);
      break;
    }
    std::erase_if(request_.headers, [](const auto& h) { return beast::iequals(h.first, "Content-Encoding"); });

    const bool usable = co_await serve_exchange(server_.context, *this, metrics_port_);
    busy_->store(false);
    if (!usable || !keep_alive_ || server_.stopping) break;
  }
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace

void ServerCore::spawn_session(tcp::socket socket, bool metrics_port) {
  auto signal = std::make_shared<asio::cancellation_signal>();
  auto busy = std::make_shared<std::atomic<bool>>(false);
  const asio::any_io_executor strand = socket.get_executor();
  uint64_t id = 0;
  {
    std::lock_guard lock(sessions_mutex);
    if (stopping) return;  // the socket closes here
    id = next_session_id++;
    sessions.emplace(id, SessionHandle{strand, signal, busy});
  }
  auto session = std::make_shared<Session>(*this, std::move(socket), metrics_port, busy);
  asio::co_spawn(
      strand, [session]() -> asio::awaitable<void> { co_await session->run(); },
      asio::bind_cancellation_slot(signal->slot(), [this, id, signal](std::exception_ptr error) {
        if (error) {
          try {
            std::rethrow_exception(error);
          } catch (const boost::system::system_error& e) {
            if (e.code() != asio::error::operation_aborted) log::warn("http: connection ended by an error: {}", e.what());
          } catch (const std::exception& e) {
            log::warn("http: connection ended by an error: {}", e.what());
          } catch (...) {
          }
        }
        std::lock_guard lock(sessions_mutex);
        sessions.erase(id);
        sessions_changed.notify_all();
      }));
}

asio::awaitable<void> ServerCore::accept_loop(tcp::acceptor& acceptor, bool metrics_port) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io), kTuple);
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // EMFILE and friends: say so, and keep accepting (the condition may clear as connections close).
      log::warn("http: accept failed: {}", ec.message());
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(kTuple);
      continue;
    }
    spawn_session(std::move(socket), metrics_port);
  }
}

void ServerCore::bind(std::optional<tcp::acceptor>& acceptor, int port, std::string_view flag,
                      std::vector<std::string>& failures) {
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.address, ec);
  if (ec) {
    failures.push_back(fmt::format("--http-address={} is not an IP address", options.address));
    return;
  }
  if (port < 0 || port > 65535) {
    failures.push_back(fmt::format("{}={} is not a port (0..65535)", flag, port));
    return;
  }
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  acceptor.emplace(asio::make_strand(io));
  const char* step = "open";
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) {
    step = "reuse_address";
    acceptor->set_option(asio::socket_base::reuse_address(true), ec);  // restart while old sockets sit in TIME_WAIT
  }
  if (!ec) {
    step = "bind";
    acceptor->bind(endpoint, ec);
  }
  if (!ec) {
    step = "listen";
    acceptor->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    failures.push_back(fmt::format("{}:{} ({}): {} ({})", options.address, port, flag, ec.message(), step));
    acceptor.reset();
  }
}

HttpServer::HttpServer(const ServerOptions& options, GenerationService& service)
    : impl_(std::make_unique<Impl>(options, service)) {
  std::vector<std::string> failures;
  impl_->bind(impl_->http_acceptor, options.http_port, "--http-port", failures);
  if (options.metrics_port >= 0) impl_->bind(impl_->metrics_acceptor, options.metrics_port, "--metrics-port", failures);
  if (!failures.empty()) {
    std::string message = "server: cannot listen on ";
    for (size_t i = 0; i < failures.size(); ++i) message += (i == 0 ? "" : "; ") + failures[i];
    message += " (free the ports or choose others)";
    throw Error(ErrorCode::usage, message);
  }
  impl_->bound_http_port = impl_->http_acceptor->local_endpoint().port();
  if (impl_->metrics_acceptor) impl_->bound_metrics_port = impl_->metrics_acceptor->local_endpoint().port();
  asio::co_spawn(impl_->http_acceptor->get_executor(), impl_->accept_loop(*impl_->http_acceptor, false), asio::detached);
  if (impl_->metrics_acceptor) {
    asio::co_spawn(impl_->metrics_acceptor->get_executor(), impl_->accept_loop(*impl_->metrics_acceptor, true), asio::detached);
  }
  for (int i = 0; i < std::max(options.num_threads, 1); ++i) {
    impl_->threads.emplace_back([this] { impl_->io.run(); });
  }
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::http_port() const { return impl_->bound_http_port; }

int HttpServer::metrics_port() const { return impl_->bound_metrics_port; }

ServerContext& HttpServer::context() { return impl_->context; }

Metrics& HttpServer::metrics() { return impl_->metrics; }

void HttpServer::stop() {
  Impl& impl = *impl_;
  if (impl.stopped) return;
  impl.stopped = true;
  for (auto* acceptor : {&impl.http_acceptor, &impl.metrics_acceptor}) {
    if (*acceptor) {
      asio::post((*acceptor)->get_executor(), [acceptor] {
        beast::error_code ignored;
        (*acceptor)->close(ignored);
      });
    }
  }
  for (RequestId id : impl.inflight.snapshot()) impl.service.cancel(id);
  std::unique_lock lock(impl.sessions_mutex);
  impl.stopping = true;
  auto cancel = [&](bool busy_too) {
    for (auto& [id, handle] : impl.sessions) {
      if (busy_too || !handle.busy->load()) {
        asio::post(handle.strand, [signal = handle.signal] { signal->emit(asio::cancellation_type::terminal); });
      }
    }
  };
  // Idle connections close now; a connection still writing a response (a drained request's last
  // tokens may still be on their way to it) finishes it first, within the grace.
  cancel(false);
  if (!impl.sessions_changed.wait_for(lock, kStopGrace, [&] { return impl.sessions.empty(); })) {
    log::warn("http: {} connections did not end within {} s of stop; closing them", impl.sessions.size(), kStopGrace.count());
    cancel(true);
    impl.sessions_changed.wait_for(lock, std::chrono::seconds(1), [&] { return impl.sessions.empty(); });
  }
  lock.unlock();
  // Submits in progress finish (they do not wait on anything but the service's own locks) and
  // resume their connections, which then end on the stopped io below.
  impl.work_pool.join();
  impl.io.stop();
  for (std::thread& t : impl.threads) t.join();
  impl.threads.clear();
}

}  // namespace rankserve::net
