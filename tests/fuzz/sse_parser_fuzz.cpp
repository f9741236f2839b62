// The client's server-sent events parser (net/sse_parser.cpp). Besides the sanitizers it checks the
// property rankserve-client relies on: the events do not depend on how the stream is split into
// chunks. Input: byte 0 seeds the split points, the rest is the stream.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "net/sse_parser.h"
#include "tests/fuzz/fuzz_support.h"

using namespace rankserve;

namespace {

struct Outcome {
  std::vector<net::SseEvent> events;
  bool partial = false;
};

bool same(const Outcome& a, const Outcome& b) {
  if (a.partial != b.partial || a.events.size() != b.events.size()) return false;
  for (size_t i = 0; i < a.events.size(); ++i) {
    const net::SseEvent &x = a.events[i], &y = b.events[i];
    if (x.event != y.event || x.data != y.data || x.id != y.id) return false;
  }
  return true;
}

// Feeds `stream` in chunks whose sizes come from a small generator seeded by `seed`; 0: one chunk.
Outcome parse(std::string_view stream, unsigned seed) {
  net::SseParser parser;
  Outcome out;
  unsigned state = seed;
  while (!stream.empty()) {
    size_t n = stream.size();
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      n = std::min<size_t>(stream.size(), 1 + (state >> 16) % 7);
    }
    for (net::SseEvent& e : parser.feed(stream.substr(0, n))) out.events.push_back(std::move(e));
    stream.remove_prefix(n);
  }
  out.partial = parser.has_partial_event();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return -1;
  const std::string_view stream = fuzz::as_text(data + 1, size - 1);
  const Outcome whole = parse(stream, 0);
  if (!same(whole, parse(stream, data[0] | 1u))) std::abort();  // the split changed the events
  return 0;
}
