// The plain request and response values the HTTP session (http_server.cpp) hands to the handlers
// (router, kserve, openai, metrics), and the error type the handlers throw. No Beast here.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace rankserve::net {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Which protocol's error body a path answers with: KServe `{"error": "..."}` or OpenAI's object.
enum class Surface { kserve, openai };

struct ServerRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query string, percent-decoding not applied
  std::string query;   // after '?', "" when none
  HeaderList headers;  // as received, in order
  std::string body;

  // The first header named `name` (case-insensitive); nullopt when absent.
  std::optional<std::string_view> header(std::string_view name) const;
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "application/json";
  HeaderList headers;  // extra headers (Retry-After, Allow, Inference-Header-Content-Length)
  std::string body;
};

// What rankserve::Error's code cannot say about an HTTP failure.
struct ErrorDetail {
  int status = 0;           // 0: the status of the ErrorCode; else 401, 405, 413, 431
  std::string param;        // the offending request field (OpenAI's `param`), "" when none
  std::string openai_code;  // OpenAI's `code` ("model_not_found", "invalid_api_key"), "" for null
  HeaderList headers;       // extra response headers (Allow, WWW-Authenticate)
};

// rankserve::Error with HTTP detail. Thrown by handlers; converted by the one wrapper in router.cpp.
class HttpError : public Error {
 public:
  HttpError(ErrorCode code, const std::string& message, ErrorDetail detail) : Error(code, message), detail_(std::move(detail)) {}
  const ErrorDetail& detail() const noexcept { return detail_; }

 private:
  ErrorDetail detail_;
};

// The elements of a comma-separated header list (RFC 9110 §5.6.1), whitespace around each trimmed,
// empty ones dropped. The views point into `value`.
std::vector<std::string_view> header_list(std::string_view value);

// A bad_request naming the request field: message "request: <field>: <what>", param `field`.
HttpError field_error(std::string_view field, std::string_view what);

// Thrown by Exchange when the client closed the connection (or a write to it failed): the request
// is cancelled and nothing more is written. Not an Error: no response can reach anyone.
struct ClientGone {};

}  // namespace rankserve::net
