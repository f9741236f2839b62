#include "net/sse_parser.h"

namespace rankserve::net {

std::vector<SseEvent> SseParser::feed(std::string_view chunk) {
  std::vector<SseEvent> out;
  if (at_start_) {
    // The BOM may itself be split across chunks; wait until three bytes are known.
    static constexpr std::string_view kBom = "\xEF\xBB\xBF";
    line_.append(chunk);
    if (line_.size() < kBom.size() && kBom.substr(0, line_.size()) == line_) return out;
    at_start_ = false;
    std::string start = line_.rfind(kBom, 0) == 0 ? line_.substr(kBom.size()) : line_;
    line_.clear();
    return feed(start);
  }
  size_t begin = 0;
  for (size_t i = 0; i < chunk.size(); ++i) {
    const char c = chunk[i];
    if (c != '\r' && c != '\n') continue;
    const bool lf_after_cr = c == '\n' && after_cr_ && i == begin && line_.empty();
    after_cr_ = c == '\r';
    if (lf_after_cr) {  // the LF of a CRLF whose CR ended the previous line
      begin = i + 1;
      continue;
    }
    line_.append(chunk.substr(begin, i - begin));
    process_line(line_, out);
    line_.clear();
    begin = i + 1;
  }
  if (begin < chunk.size()) {
    after_cr_ = false;
    line_.append(chunk.substr(begin));
  }
  return out;
}

void SseParser::process_line(std::string_view line, std::vector<SseEvent>& out) {
  if (line.empty()) {  // dispatch
    if (has_data_) out.push_back(SseEvent{event_, data_, last_id_});
    event_.clear();
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;  // comment (servers send these as keep-alives)
  const size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) data_ += '\n';
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  }
}

}  // namespace rankserve::net
