// One HTTP request/response exchange as the handlers see it: the request, and coroutine operations
// to answer it whole or as a chunked stream, and to wait for engine events while watching the
// client. Implemented by the Beast session in http_server.cpp; handlers never see Beast.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "net/http_types.h"

namespace rankserve::net {

template <typename T>
using Task = boost::asio::awaitable<T>;

// Every operation runs on the connection's strand (executor()); one exchange at a time per
// connection. Operations that write throw ClientGone when the peer is gone.
class Exchange {
 public:
  virtual ~Exchange() = default;

  virtual const ServerRequest& request() const = 0;
  virtual boost::asio::any_io_executor executor() const = 0;

  // Sends one complete response. At most once, and not after begin_stream().
  virtual Task<void> respond(ServerResponse response) = 0;

  // Sends the status line and headers of a chunked response (`Transfer-Encoding: chunked`); each
  // write_chunk() is one chunk, written and flushed before it returns; end_stream() sends the last
  // chunk. The connection stays usable afterwards.
  virtual Task<void> begin_stream(int status, std::string content_type, HeaderList headers) = 0;
  virtual Task<void> write_chunk(std::string data) = 0;
  virtual Task<void> end_stream() = 0;
  virtual bool streaming() const = 0;  // begin_stream() was called
  virtual bool responded() const = 0;  // respond() or begin_stream() was called
  virtual int status() const = 0;      // the status sent; 0 before

  // Runs `operation` while watching the connection: throws ClientGone as soon as the client closes
  // it (EOF or reset) before `operation` completes, cancelling it. Data the client sends meanwhile
  // (a pipelined request) ends the watching, not the wait.
  virtual Task<void> watch_client(Task<void> operation) = 0;
};

}  // namespace rankserve::net
