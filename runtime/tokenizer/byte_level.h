// GPT-2's byte-level alphabet (each byte spelled as one printable code point, as in openai/gpt-2
// encoder.py bytes_to_unicode()), and the UTF-8 scanning of core/utf8.h that the tokenizer
// and its streaming decoder use. Internal to rankserve_tokenizer; pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace rankserve::runtime::byte_level {

// Appends the UTF-8 encoding of code point `c` (any value up to U+10FFFF) to `out`.
void append_utf8(std::string& out, char32_t c);

// Appends the vocab.json spelling of raw `bytes`: one alphabet code point per byte, UTF-8 encoded
// ("\n" becomes "Ċ", " the" becomes "Ġthe").
void append_spelling(std::string& out, std::string_view bytes);

// The raw bytes a vocab.json token spells; nullopt if `token` is not valid UTF-8 or holds a code
// point outside the 256-symbol alphabet (a vocabulary that is not byte-level, e.g. SentencePiece).
std::optional<std::string> bytes_of_spelling(std::string_view token);

// Declared in core/utf8.h (the HTTP front end uses them too).
using rankserve::append_utf8_lossy;
using rankserve::scan_utf8;
using rankserve::Utf8Kind;
using rankserve::Utf8Step;

}  // namespace rankserve::runtime::byte_level
