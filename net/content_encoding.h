// Request bodies sent with `Content-Encoding: gzip` or `deflate` (tritonclient's
// request_compression_algorithm), inflated before any decoder sees them. Called by the HTTP
// session (http_server.cpp) once a body is read; the gRPC server may call it for its own bodies.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace rankserve::net {

// Why a body could not be decoded: the HTTP status (400, 413 or 415) and the message.
struct ContentEncodingError {
  int status = 400;
  std::string message;
};

// Replaces `body` by its inflated bytes when `content_encoding` (the header's value; nullopt when
// absent) is gzip (also x-gzip; concatenated members are one body), deflate (the zlib format of
// RFC 9110 §8.4.1.2, or raw deflate as some clients send it) or identity. The inflation streams
// into an output that never grows past `max_inflated_bytes` (a zip bomb stops there: 413).
// A corrupt or truncated stream: 400; any other coding or a list of several: 415. Thread-safe.
std::optional<ContentEncodingError> decode_content_encoding(std::optional<std::string_view> content_encoding, std::string& body,
                                                            std::size_t max_inflated_bytes);

// Responses of fewer bytes go out uncompressed whatever the client accepts: not worth the CPU.
inline constexpr std::size_t kMinCompressedResponseBytes = 1024;

// True when an Accept-Encoding value (nullopt: the header is absent) accepts gzip: `gzip`,
// `x-gzip` or `*` listed with a q-value above 0 (RFC 9110 §12.5.3).
bool accepts_gzip(std::optional<std::string_view> accept_encoding);

// `data` as one gzip member (level 6). For responses to clients that accept gzip.
std::string gzip_compress(std::string_view data);

}  // namespace rankserve::net
