#include "runtime/tokenizer/byte_level.h"

#include <array>

namespace rankserve::runtime::byte_level {
namespace {

// encoder.py keeps the printable Latin-1 bytes as themselves and spells the other 68 bytes (controls,
// space, DEL, NBSP, soft hyphen) as U+0100 onwards, in byte order.
constexpr bool is_self_spelled(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

constexpr char32_t kAlphabetEnd = 256 + 68;

constexpr std::array<char32_t, 256> make_alphabet() {
  std::array<char32_t, 256> alphabet{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) alphabet[b] = is_self_spelled(b) ? static_cast<char32_t>(b) : next++;
  return alphabet;
}

constexpr std::array<int16_t, kAlphabetEnd> make_inverse(const std::array<char32_t, 256>& alphabet) {
  std::array<int16_t, kAlphabetEnd> inverse{};
  for (auto& b : inverse) b = -1;
  for (int b = 0; b < 256; ++b) inverse[alphabet[b]] = static_cast<int16_t>(b);
  return inverse;
}

constexpr std::array<char32_t, 256> kAlphabet = make_alphabet();
constexpr std::array<int16_t, kAlphabetEnd> kInverse = make_inverse(kAlphabet);
static_assert(kAlphabet[' '] == 0x120 && kAlphabet['\n'] == 0x10A, "Ġ is space and Ċ is newline, as in vocab.json");

// Precondition: bytes[0, length) is one well-formed character.
char32_t decode_valid(std::string_view bytes, std::size_t length) {
  auto byte = [&](std::size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(bytes[i])); };
  if (length == 1) return byte(0);
  char32_t c = byte(0) & (0x7F >> length);
  for (std::size_t i = 1; i < length; ++i) c = (c << 6) | (byte(i) & 0x3F);
  return c;
}

}  // namespace

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

void append_spelling(std::string& out, std::string_view bytes) {
  for (char b : bytes) append_utf8(out, kAlphabet[static_cast<unsigned char>(b)]);
}

std::optional<std::string> bytes_of_spelling(std::string_view token) {
  std::string bytes;
  bytes.reserve(token.size());
  while (!token.empty()) {
    Utf8Step step = scan_utf8(token);
    if (step.kind != Utf8Kind::valid) return std::nullopt;
    char32_t c = decode_valid(token, step.length);
    if (c >= kAlphabetEnd || kInverse[c] < 0) return std::nullopt;
    bytes += static_cast<char>(kInverse[c]);
    token.remove_prefix(step.length);
  }
  return bytes;
}

}  // namespace rankserve::runtime::byte_level
