#include "net/stream_loop.h"

#include "net/sse.h"

namespace rankserve::net {

void StreamFraming::frame_prelude(const Generation&, std::string&) {}
void StreamFraming::frame_trailer(const Generation&, std::string&) {}

namespace {

// Writes what `out` holds as one chunk, if anything, and leaves it empty.
Task<void> flush(Exchange& exchange, std::string& out) {
  if (out.empty()) co_return;
  std::string data;
  data.swap(out);
  co_await exchange.write_chunk(std::move(data));
}

}  // namespace

Task<void> stream_events(Exchange& exchange, Generation& generation, StreamFraming& framing) {
  co_await exchange.begin_stream(200, std::string(kSseContentType), sse_headers());
  std::string out;
  framing.frame_prelude(generation, out);
  co_await flush(exchange, out);
  // Tokens framed so far per sample: the index of each token event in its sample's tokens.
  std::vector<size_t> num_framed(generation.samples().size(), 0);
  for (;;) {
    std::vector<SampleEvent> events = co_await generation.next();
    if (events.empty()) break;
    for (const SampleEvent& e : events) {
      if (Generation::failed(e)) {
        co_await flush(exchange, out);  // what came before the failure still goes out
        generation.throw_if_failed(e);
      }
      const size_t token_index = e.finished ? 0 : num_framed.at(e.sample)++;
      framing.frame_event(StreamEvent{e, generation.samples().at(e.sample), token_index}, out);
    }
    co_await flush(exchange, out);
  }
  framing.frame_trailer(generation, out);
  co_await flush(exchange, out);
  co_await exchange.end_stream();
}

}  // namespace rankserve::net
