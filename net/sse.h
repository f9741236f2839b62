// Server-sent events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// one `data:` line per event, ended by a blank line. Our payloads are single-line JSON.
#pragma once

#include <string>
#include <string_view>

#include "net/http_types.h"

namespace rankserve::net {

inline constexpr std::string_view kSseContentType = "text/event-stream";
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";  // OpenAI's end-of-stream event

// Response headers of an event stream: no caching by proxies.
inline HeaderList sse_headers() { return {{"Cache-Control", "no-cache"}}; }

inline std::string sse_frame(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  out += "data: ";
  out += payload;
  out += "\n\n";
  return out;
}

}  // namespace rankserve::net
