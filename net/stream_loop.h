// The one streaming loop of the HTTP front end: a Generation's events sent as server-sent events,
// each protocol (KServe generate_stream, OpenAI completions and chat) supplying only its framing.
// Called by the streaming handlers in kserve.cpp, openai_completions.cpp and openai_chat.cpp.
#pragma once

#include <string>

#include "net/exchange.h"
#include "net/generation.h"

namespace rankserve::net {

// One engine event as a framer sees it: the event, its sample's state and, for a token, the index
// of that token in sample.tokens (the state already holds every event of the batch, so the last
// token of sample.tokens need not be this one).
struct StreamEvent {
  const SampleEvent& event;
  const SampleState& sample;
  size_t token_index = 0;  // valid when !event.finished
};

// A protocol's framing: whole SSE events (sse_frame), appended to `out`. Strand only, like the
// Generation it reads.
class StreamFraming {
 public:
  virtual ~StreamFraming() = default;
  // Events sent right after the headers, before the engine's first event (chat's role deltas, an
  // echoed prompt); none by default.
  virtual void frame_prelude(const Generation& generation, std::string& out);
  // The events of one engine event; nothing when it shows nothing yet (an incomplete character).
  // Never called for a failed finish: that ends the stream through the handler wrapper's error event.
  virtual void frame_event(const StreamEvent& event, std::string& out) = 0;
  // Events after every sample finished (OpenAI's usage chunk and `data: [DONE]`); none by default.
  // Called once, before they are written (KServe counts the inference here).
  virtual void frame_trailer(const Generation& generation, std::string& out);
};

// Streams `generation` (submitted, not yet read) as `text/event-stream` on `exchange`: the headers
// and the prelude, then for each batch of events that Generation::next() returns, the frames of
// them all in one chunk (one write), then the trailer and the end of the body. A failed sample
// ends it with the frames of the events before the failure written and the sample's error thrown
// (Generation::throw_if_failed), which the handler wrapper sends as the stream's last event.
// Throws ClientGone when the client goes away (the samples are cancelled).
Task<void> stream_events(Exchange& exchange, Generation& generation, StreamFraming& framing);

}  // namespace rankserve::net
