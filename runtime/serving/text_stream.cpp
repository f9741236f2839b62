#include "runtime/serving/text_stream.h"

#include <algorithm>

namespace rankserve::runtime {

TextStream::TextStream(const BpeTokenizer& tokenizer, std::vector<std::string> stop, bool keep_stop)
    : decoder_(tokenizer), keep_stop_(keep_stop) {
  for (std::string& s : stop) {
    if (!s.empty()) stop_.push_back(std::move(s));
  }
}

TextStream::Piece TextStream::push(int32_t id) {
  Piece piece;
  // The token's bytes are looked up once, for its own text and for the stream.
  IncrementalDecoder::Decoded decoded = decoder_.push_token(id);
  piece.token = std::move(decoded.token);
  if (stopped_) {
    piece.stopped = true;
    return piece;
  }
  text_ += decoded.text;
  // A match cannot start in released text: a suffix that could begin an end string is never released.
  size_t match = std::string::npos, match_length = 0;
  for (const std::string& s : stop_) {
    const size_t at = text_.find(s, released_);
    if (at < match) {
      match = at;
      match_length = s.size();
    }
  }
  if (match != std::string::npos) {
    const size_t end = keep_stop_ ? match + match_length : match;
    piece.text = text_.substr(released_, end - released_);
    text_.resize(end);
    released_ = end;
    stopped_ = piece.stopped = true;
    return piece;
  }
  // Hold back the longest tail that is a proper prefix of an end string.
  size_t held = 0;
  const size_t unreleased = text_.size() - released_;
  for (const std::string& s : stop_) {
    for (size_t n = std::min(unreleased, s.size() - 1); n > held; --n) {
      if (text_.compare(text_.size() - n, n, s, 0, n) == 0) {
        held = n;
        break;
      }
    }
  }
  const size_t end = text_.size() - held;
  piece.text = text_.substr(released_, end - released_);
  released_ = end;
  return piece;
}

std::string TextStream::finish() {
  if (!stopped_) text_ += decoder_.finish();
  std::string rest = text_.substr(released_);
  released_ = text_.size();
  return rest;
}

}  // namespace rankserve::runtime
