// UTF-8 scanning shared by the tokenizer (its streaming decoder) and the HTTP front end (text inputs
// are checked, JSON responses kept well-formed). Pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace rankserve {

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
// Never consumes an ASCII byte as part of an ill-formed subpart, so JSON or HTTP text keeps its structure.
std::size_t append_utf8_lossy(std::string& out, std::string_view bytes, bool final);

// The offset of the first byte of `bytes` that does not begin a well-formed character (a truncated
// character at the end included); nullopt when all of `bytes` is well-formed UTF-8.
std::optional<std::size_t> invalid_utf8_offset(std::string_view bytes);

}  // namespace rankserve
