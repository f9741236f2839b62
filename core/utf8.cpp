#include "core/utf8.h"

namespace rankserve {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

}  // namespace

Utf8Step scan_utf8(std::string_view bytes) {
  auto lead = static_cast<unsigned char>(bytes[0]);
  if (lead < 0x80) return {Utf8Kind::valid, 1};
  // Table 3-7: the second byte's range depends on the lead byte; later bytes are always 80..BF.
  std::size_t continuation = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    continuation = 2;
    if (lead == 0xE0) low = 0xA0;   // no overlong 3-byte forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    continuation = 3;
    if (lead == 0xF0) low = 0x90;   // no overlong 4-byte forms
    if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Utf8Kind::invalid, 1};
  }
  for (std::size_t i = 1; i <= continuation; ++i) {
    if (i >= bytes.size()) return {Utf8Kind::truncated, bytes.size()};
    auto b = static_cast<unsigned char>(bytes[i]);
    if (b < (i == 1 ? low : 0x80) || b > (i == 1 ? high : 0xBF)) return {Utf8Kind::invalid, i};
  }
  return {Utf8Kind::valid, continuation + 1};
}

std::size_t append_utf8_lossy(std::string& out, std::string_view bytes, bool final) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    Utf8Step step = scan_utf8(bytes.substr(pos));
    if (step.kind == Utf8Kind::truncated && !final) return pos;
    if (step.kind == Utf8Kind::valid) {
      out.append(bytes.substr(pos, step.length));
    } else {
      out.append(kReplacement);
    }
    pos += step.length;
  }
  return pos;
}

std::optional<std::size_t> invalid_utf8_offset(std::string_view bytes) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const Utf8Step step = scan_utf8(bytes.substr(pos));
    if (step.kind != Utf8Kind::valid) return pos;
    pos += step.length;
  }
  return std::nullopt;
}

}  // namespace rankserve
