#include "net/errors.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "net/http_server.h"
#include "net/json_fields.h"

namespace rankserve::net {

namespace json = boost::json;

namespace {

int status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::bad_request: return 400;
    case ErrorCode::not_found: return 404;
    case ErrorCode::overloaded: return 429;
    case ErrorCode::unavailable: return 503;
    case ErrorCode::timeout: return 504;
    default: return 500;
  }
}

// OpenAI's error `type` by status, as its API answers them (the SDKs dispatch on the status).
std::string openai_type(int status) {
  switch (status) {
    case 400:
    case 405:
    case 413:
    case 431:
    case 501: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    case 504: return "timeout_error";
    default: return "server_error";
  }
}

}  // namespace

ErrorReply classify_error(std::exception_ptr error, const ServerOptions& options) {
  ErrorReply reply;
  try {
    std::rethrow_exception(error);
  } catch (const HttpError& e) {
    const ErrorDetail& d = e.detail();
    reply.status = d.status != 0 ? d.status : status_of(e.code());
    reply.message = e.what();
    reply.param = d.param;
    reply.openai_code = d.openai_code;
    reply.headers = d.headers;
  } catch (const Error& e) {
    reply.status = status_of(e.code());
    reply.message = options.error_message ? options.error_message(e) : e.what();
  } catch (const std::exception& e) {
    reply.status = 500;
    reply.message = fmt::format("server: internal error: {}", e.what());
  } catch (...) {
    reply.status = 500;
    reply.message = "server: internal error of unknown type";
  }
  reply.type = openai_type(reply.status);
  if (reply.status == 429) {
    // RFC 9110 §10.2.3: seconds the client should wait before retrying.
    reply.headers.emplace_back("Retry-After", std::to_string(options.retry_after_s));
    if (reply.openai_code.empty()) reply.openai_code = "rate_limit_exceeded";
  }
  return reply;
}

std::string error_body(Surface surface, const ErrorReply& reply) {
  if (surface == Surface::kserve) return serialize_json(json::object{{"error", reply.message}});
  json::object inner;
  inner["message"] = reply.message;
  inner["type"] = reply.type;
  inner["param"] = reply.param.empty() ? json::value(nullptr) : json::value(reply.param);
  inner["code"] = reply.openai_code.empty() ? json::value(nullptr) : json::value(reply.openai_code);
  return serialize_json(json::object{{"error", std::move(inner)}});
}

ServerResponse error_response(Surface surface, const ErrorReply& reply) {
  ServerResponse response;
  response.status = reply.status;
  response.headers = reply.headers;
  response.body = error_body(surface, reply);
  return response;
}

}  // namespace rankserve::net
