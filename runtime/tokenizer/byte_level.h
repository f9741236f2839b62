// GPT-2's byte-level alphabet (each byte spelled as one printable code point, as in openai/gpt-2
// encoder.py bytes_to_unicode()) and the UTF-8 scanning shared by the tokenizer and its streaming
// decoder. Internal to rankserve_tokenizer; pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rankserve::runtime::byte_level {

// Appends the UTF-8 encoding of code point `c` (any value up to U+10FFFF) to `out`.
void append_utf8(std::string& out, char32_t c);

// Appends the vocab.json spelling of raw `bytes`: one alphabet code point per byte, UTF-8 encoded
// ("\n" becomes "Ċ", " the" becomes "Ġthe").
void append_spelling(std::string& out, std::string_view bytes);

// The raw bytes a vocab.json token spells; nullopt if `token` is not valid UTF-8 or holds a code
// point outside the 256-symbol alphabet (a vocabulary that is not byte-level, e.g. SentencePiece).
std::optional<std::string> bytes_of_spelling(std::string_view token);

// One step of UTF-8 scanning at the start of a byte string (Unicode 15, table 3-7).
enum class Utf8Kind {
  valid,      // `length` bytes form one well-formed character
  invalid,    // `length` bytes are one maximal ill-formed subpart: exactly one U+FFFD replaces them
  truncated,  // all the bytes (length of them) begin a character that more bytes could complete
};
struct Utf8Step {
  Utf8Kind kind;
  std::size_t length;  // bytes, at least 1
};

// Precondition: `bytes` is not empty.
Utf8Step scan_utf8(std::string_view bytes);

// Appends `bytes` to `out` as well-formed UTF-8, each maximal ill-formed subpart replaced by U+FFFD
// (the "substitution of maximal subparts" practice that Python's errors="replace" and Rust's
// from_utf8_lossy follow). If `final` is false a trailing truncated character is left out.
// Returns the number of bytes consumed: bytes.size(), or less by the held-back tail.
std::size_t append_utf8_lossy(std::string& out, std::string_view bytes, bool final);

}  // namespace rankserve::runtime::byte_level
