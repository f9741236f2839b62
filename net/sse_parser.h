// Incremental parser of server-sent events (text/event-stream) for rankserve-client's streaming
// forms (Triton generate_stream, OpenAI "stream": true). Pure code: feed it body chunks as they arrive.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rankserve::net {

// One dispatched event. `data` joins the event's data lines with '\n' (no trailing newline).
struct SseEvent {
  std::string event;  // the "event:" field; empty means the default type "message"
  std::string data;
  std::string id;  // the last "id:" seen on the stream (sticky, as the spec says)
};

// Implements the event-stream interpretation of https://html.spec.whatwg.org/multipage/server-sent-events.html
// ("Interpreting an event stream"): lines end in CRLF, LF or CR, also when the CR and the LF arrive in
// different chunks; ':' lines are comments; "field: value" drops one space after the colon; a blank
// line dispatches the event when it has data. "retry:" and unknown fields are ignored. Not thread-safe.
class SseParser {
 public:
  // Parses `chunk` and returns the events it completes, in order. A partial line or event is kept
  // for the next call.
  std::vector<SseEvent> feed(std::string_view chunk);

  // True when a partial event (data without its blank line) is pending: a stream that ends here
  // was cut off.
  bool has_partial_event() const { return !line_.empty() || has_data_; }

 private:
  void process_line(std::string_view line, std::vector<SseEvent>& out);

  std::string line_;       // the current line, not yet terminated
  bool after_cr_ = false;  // the last byte seen was CR: a leading LF of the next chunk ends nothing
  bool at_start_ = true;   // a UTF-8 byte-order mark at the start of the stream is skipped
  std::string event_;
  std::string data_;
  bool has_data_ = false;
  std::string last_id_;
};

}  // namespace rankserve::net
