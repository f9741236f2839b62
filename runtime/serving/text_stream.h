// One request's generated text as it streams: whole UTF-8 characters only, with end strings applied
// (text that may still become an end string is held back; a matched one ends the stream). Used by
// the scheduler on the engine thread, one per request.
#pragma once

#include <string>
#include <vector>

#include "runtime/tokenizer/bpe_tokenizer.h"

namespace rankserve::runtime {

class TextStream {
 public:
  // `stop`: end strings (empty ones are ignored); `keep_stop` leaves a matched one in the text.
  // Borrows the tokenizer, which must outlive the stream.
  TextStream(const BpeTokenizer& tokenizer, std::vector<std::string> stop, bool keep_stop);

  struct Piece {
    std::string text;      // text released by this token (possibly empty)
    std::string token;     // the token's own text (TokenEvent::token), also after a stop
    bool stopped = false;  // an end string matched; nothing more will be released
  };

  // Adds one generated token. After a stop, further tokens release nothing.
  Piece push(int32_t id);

  // Releases everything held back (an incomplete character as U+FFFD, an end-string prefix).
  std::string finish();

  const std::string& text() const { return text_; }  // all text decoded so far, held-back part included

 private:
  IncrementalDecoder decoder_;
  std::vector<std::string> stop_;
  bool keep_stop_;
  std::string text_;
  size_t released_ = 0;  // bytes of text_ released
  bool stopped_ = false;
};

}  // namespace rankserve::runtime
