#include "net/content_encoding.h"

#include <fmt/format.h>
#include <zlib.h>

#include <boost/beast/core/string.hpp>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <vector>

#include "net/http_types.h"

namespace rankserve::net {

namespace {

// Bytes inflated per zlib call.
constexpr std::size_t kInflateStep = 64 * 1024;

enum class Coding { gzip, zlib, raw_deflate };

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int window_bits(Coding coding) {
  switch (coding) {
    case Coding::gzip: return 15 + 16;  // gzip wrapper only
    case Coding::zlib: return 15;       // zlib wrapper only
    case Coding::raw_deflate: return -15;
  }
  return 15;
}

enum class Outcome { done, corrupt, too_large };

// Inflates `in`, counting the bytes in `size`. With `dest` null the output goes to a scratch buffer
// and is dropped (a first pass that measures); else `dest` holds `size` bytes from a first pass.
// Stops with too_large once more than `limit` bytes come out.
Outcome inflate_all(std::string_view in, Coding coding, std::size_t limit, char* dest, std::size_t& size, std::string& detail) {
  z_stream z{};
  if (inflateInit2(&z, window_bits(coding)) != Z_OK) throw std::bad_alloc();
  std::vector<char> scratch(dest == nullptr ? kInflateStep : 0);
  const std::size_t capacity = dest == nullptr ? 0 : size;
  size = 0;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  // Bodies are at most max_body_bytes, far below uInt's range; checked anyway.
  z.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size(), std::numeric_limits<uInt>::max()));
  Outcome outcome = Outcome::corrupt;
  for (;;) {
    if (size > limit) {
      outcome = Outcome::too_large;
      break;
    }
    if (dest != nullptr && size > capacity) {
      detail = "the stream inflated to more than it measured";  // zlib is deterministic: never seen
      break;
    }
    // The measuring pass always has room (one byte past the limit tells "exactly" from "more");
    // the writing pass has exactly what the first pass measured, plus nothing.
    const std::size_t room = dest == nullptr ? kInflateStep : std::min(kInflateStep, capacity - size);
    char* at = dest == nullptr ? scratch.data() : dest + size;
    char spare = 0;
    z.next_out = reinterpret_cast<Bytef*>(room == 0 ? &spare : at);
    z.avail_out = static_cast<uInt>(room == 0 ? 1 : room);
    const uInt before = z.avail_out;
    const int rc = inflate(&z, Z_NO_FLUSH);
    size += before - z.avail_out;
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) {
        outcome = size > limit ? Outcome::too_large : Outcome::done;
        break;
      }
      if (coding != Coding::gzip) {
        detail = fmt::format("{} bytes follow the end of the compressed stream", z.avail_in);
        break;
      }
      // RFC 1952 §2.2: a gzip file is a series of members; each inflates on from the last.
      if (inflateReset(&z) != Z_OK) break;
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && z.avail_in == 0 && z.avail_out != 0) {
      detail = "the compressed stream ends before its end marker (truncated)";
      break;
    }
    if (rc == Z_BUF_ERROR) continue;  // out of output room: the next turn gives more
    detail = z.msg != nullptr ? z.msg : fmt::format("zlib error {}", rc);
    break;
  }
  inflateEnd(&z);
  return outcome;
}

// Measures, then inflates into a string of exactly the inflated size: a body never holds more
// than `limit` bytes, and a bomb is refused having allocated only the scratch step.
Outcome inflate_body(std::string_view in, Coding coding, std::size_t limit, std::string& out, std::string& detail) {
  std::size_t size = 0;
  const Outcome measured = inflate_all(in, coding, limit, nullptr, size, detail);
  if (measured != Outcome::done) return measured;
  out.assign(size, '\0');
  return inflate_all(in, coding, limit, out.data(), size, detail);
}

}  // namespace

std::optional<ContentEncodingError> decode_content_encoding(std::optional<std::string_view> content_encoding, std::string& body,
                                                            std::size_t max_inflated_bytes) {
  if (!content_encoding) return std::nullopt;
  const std::string_view value = trim(*content_encoding);
  if (value.empty() || boost::beast::iequals(value, "identity")) return std::nullopt;
  std::optional<Coding> coding;
  if (boost::beast::iequals(value, "gzip") || boost::beast::iequals(value, "x-gzip")) coding = Coding::gzip;
  if (boost::beast::iequals(value, "deflate")) coding = Coding::zlib;
  if (!coding) {
    return ContentEncodingError{415, fmt::format("http: Content-Encoding '{}' is not supported; expected gzip, deflate or "
                                                 "identity (compress the body with one of them, or send it uncompressed)",
                                                 value)};
  }
  std::string out;
  std::string detail;
  Outcome outcome = inflate_body(body, *coding, max_inflated_bytes, out, detail);
  if (outcome == Outcome::corrupt && *coding == Coding::zlib) {
    // Some clients send raw deflate (RFC 1951) under the name, without the zlib header.
    std::string raw_detail;
    const Outcome raw = inflate_body(body, Coding::raw_deflate, max_inflated_bytes, out, raw_detail);
    if (raw != Outcome::corrupt) outcome = raw;
  }
  if (outcome == Outcome::too_large) {
    return ContentEncodingError{
        413, fmt::format("http: the body inflates (Content-Encoding {}) to more than {} bytes; at most {} are accepted after "
                         "decompression (send a smaller request)",
                         value, max_inflated_bytes, max_inflated_bytes)};
  }
  if (outcome == Outcome::corrupt) {
    return ContentEncodingError{400, fmt::format("http: the body is not valid Content-Encoding {} ({}); expected a complete "
                                                 "{} stream (check the client's compression, or drop the header)",
                                                 value, detail, *coding == Coding::gzip ? "gzip" : "zlib/deflate")};
  }
  body = std::move(out);
  return std::nullopt;
}

bool accepts_gzip(std::optional<std::string_view> accept_encoding) {
  if (!accept_encoding) return false;
  bool gzip = false;
  bool gzip_named = false;
  for (const std::string_view item : header_list(*accept_encoding)) {
    const size_t semicolon = item.find(';');
    const std::string_view coding = trim(item.substr(0, semicolon));
    double q = 1;
    if (semicolon != std::string_view::npos) {
      const std::string_view param = trim(item.substr(semicolon + 1));
      if (param.size() > 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        q = std::strtod(std::string(param.substr(2)).c_str(), nullptr);
      }
    }
    const bool named = boost::beast::iequals(coding, "gzip") || boost::beast::iequals(coding, "x-gzip");
    if (named) {
      gzip_named = true;
      gzip = q > 0;
    } else if (coding == "*" && !gzip_named) {
      gzip = q > 0;
    }
  }
  return gzip;
}

std::string gzip_compress(std::string_view data) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::bad_alloc();
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip: deflate did not finish in its bound");
  return out;
}

}  // namespace rankserve::net
