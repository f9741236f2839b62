// The one conversion of a handler's exception into an HTTP status and a protocol-shaped body.
// Called only by the handler wrapper in router.cpp (and, for mid-stream errors, by the SSE writers
// it hands the exception to).
#pragma once

#include <exception>
#include <string>

#include "net/http_types.h"

namespace rankserve::net {

struct ErrorReply {
  int status = 500;
  std::string message;
  std::string type;         // OpenAI's `type`: invalid_request_error, not_found_error, ...
  std::string param;        // "" -> null
  std::string openai_code;  // "" -> null
  HeaderList headers;
};

struct ServerOptions;

// Classifies any exception a handler may throw (Error, HttpError, std::exception, other); an Error's
// message is worded by options.error_message, a 429's Retry-After is options.retry_after_s.
ErrorReply classify_error(std::exception_ptr error, const ServerOptions& options);

// `{"error": "..."}` (KServe) or `{"error": {"message", "type", "param", "code"}}` (OpenAI).
std::string error_body(Surface surface, const ErrorReply& reply);

ServerResponse error_response(Surface surface, const ErrorReply& reply);

}  // namespace rankserve::net
