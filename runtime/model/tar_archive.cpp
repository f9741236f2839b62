#include "runtime/model/tar_archive.h"

#include <fmt/format.h>
#include <zlib.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>

#include "core/error.h"

namespace rankserve::runtime {
namespace {

constexpr uint64_t kBlock = 512;
// A GNU long name or a PAX header holds a path and a few attributes: more than this is damage, not
// something to allocate.
constexpr uint64_t kMaxNameRecords = 1 << 20;

Error damaged(const std::string& path, const std::string& what) {
  return Error(ErrorCode::load, fmt::format("load: {}: {}", path, what));
}

// The archive's bytes front to back, from the file or through gzip.
class Input {
 public:
  explicit Input(const std::string& path) : path_(path) {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw damaged(path, "cannot open");
    unsigned char magic[2] = {};
    probe.read(reinterpret_cast<char*>(magic), 2);
    gzip_ = probe.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (gzip_) {
      gz_ = gzopen(path.c_str(), "rb");
      if (!gz_) throw damaged(path, "cannot open");
      gzbuffer(gz_, 1 << 20);
    } else {
      file_.open(path, std::ios::binary);
    }
  }
  ~Input() {
    if (gz_) gzclose(gz_);
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;

  bool gzip() const { return gzip_; }
  uint64_t position() const { return position_; }

  // Reads exactly `size` bytes; false at a clean end of input before the first byte.
  bool read(char* out, uint64_t size) {
    uint64_t got = 0;
    while (got < size) {
      const uint64_t n = gzip_ ? read_gzip(out + got, size - got) : read_file(out + got, size - got);
      if (n == 0) {
        if (got == 0) return false;
        throw damaged(path_, fmt::format("truncated at byte {}{}", position_ + got, gzip_ ? " of the decompressed stream" : ""));
      }
      got += n;
    }
    position_ += size;
    return true;
  }

  void skip(uint64_t size) {
    if (!gzip_) {
      file_.clear();
      file_.seekg(static_cast<std::streamoff>(position_ + size));
      position_ += size;
      return;
    }
    std::string scratch(std::min<uint64_t>(size, 1 << 20), '\0');
    for (uint64_t left = size; left > 0;) {
      const uint64_t n = std::min<uint64_t>(left, scratch.size());
      if (!read(scratch.data(), n)) throw damaged(path_, "truncated");
      left -= n;
    }
  }

 private:
  uint64_t read_file(char* out, uint64_t size) {
    file_.read(out, static_cast<std::streamsize>(size));
    return static_cast<uint64_t>(file_.gcount());
  }
  uint64_t read_gzip(char* out, uint64_t size) {
    const int n = gzread(gz_, out, static_cast<unsigned>(std::min<uint64_t>(size, 1u << 30)));
    if (n < 0) {
      int code = 0;
      throw damaged(path_, fmt::format("gzip data is damaged: {}", gzerror(gz_, &code)));
    }
    return static_cast<uint64_t>(n);
  }

  std::string path_;
  bool gzip_ = false;
  gzFile gz_ = nullptr;
  std::ifstream file_;
  uint64_t position_ = 0;
};

uint64_t octal(const char* field, size_t width) {
  uint64_t value = 0;
  for (size_t i = 0; i < width && field[i]; ++i) {
    if (field[i] == ' ') continue;
    if (field[i] < '0' || field[i] > '7') break;
    value = value * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  return value;
}

std::string text(const char* field, size_t width) { return std::string(field, strnlen(field, width)); }

// PAX extended header records: "<length> <key>=<value>\n", the length counting the whole record;
// returns the path if present. Throws Error(load) naming the archive for a malformed record.
std::string pax_path(const std::string& records, const std::string& path) {
  for (size_t at = 0; at < records.size();) {
    const size_t space = records.find(' ', at);
    size_t length = 0;
    const auto [end, ec] =
        std::from_chars(records.data() + at, records.data() + (space == std::string::npos ? at : space), length);
    if (space == std::string::npos || ec != std::errc() || end != records.data() + space || length < space + 2 - at ||
        length > records.size() - at) {
      throw damaged(
          path,
          fmt::format("PAX header record at byte {} of its header is malformed; expected \"<length> <key>=<value>\\n\"", at));
    }
    const std::string record = records.substr(space + 1, length - (space + 1 - at) - 1);
    if (record.rfind("path=", 0) == 0) return record.substr(5);
    at += length;
  }
  return "";
}

// Calls visit(name, member, input) for each regular file, positioned at its data; visit returns the
// bytes it read (at most member.size) and may stop the walk by returning UINT64_MAX.
void walk(Input& in, const std::string& path,
          const std::function<uint64_t(const std::string&, const TarMember&, Input&)>& visit) {
  std::string long_name;
  char header[kBlock];
  if (!in.read(header, kBlock)) throw damaged(path, "not a tar archive (empty)");
  for (bool more = true; more; more = in.read(header, kBlock)) {
    if (header[0] == '\0') break;  // end-of-archive blocks
    if (std::memcmp(header + 257, "ustar", 5) != 0) {
      throw damaged(path, fmt::format("not a tar archive (no ustar header at byte {})", in.position() - kBlock));
    }
    const uint64_t size = octal(header + 124, 12), padded = (size + kBlock - 1) / kBlock * kBlock;
    const char type = header[156];
    std::string name = text(header, 100);
    const std::string prefix = text(header + 345, 155);
    if (!prefix.empty()) name = prefix + "/" + name;
    uint64_t used = 0;
    if (type == 'L' || type == 'x') {  // the next member's long name (GNU) or PAX records
      if (size > kMaxNameRecords) {
        throw damaged(path, fmt::format("a {} header at byte {} claims {} bytes; expected at most {} (damaged archive?)",
                                        type == 'L' ? "GNU long-name" : "PAX", in.position() - kBlock, size, kMaxNameRecords));
      }
      std::string data(size, '\0');
      in.read(data.data(), size);
      used = size;
      long_name = type == 'L' ? data.substr(0, data.find('\0')) : pax_path(data, path);  // up to its NUL
    } else {
      if (!long_name.empty()) name = long_name;
      long_name.clear();
      while (name.rfind("./", 0) == 0) name = name.substr(2);
      if (type == '0' || type == '\0') {
        used = visit(name, TarMember{in.position(), size}, in);
        if (used == UINT64_MAX) return;
      }
    }
    in.skip(padded - used);
  }
}

}  // namespace

TarListing list_tar(const std::string& path, uint64_t keep_bytes) {
  Input in(path);
  TarListing listing;
  listing.gzip = in.gzip();
  walk(in, path, [&](const std::string& name, const TarMember& m, Input& input) -> uint64_t {
    listing.members[name] = m;
    if (!listing.gzip || m.size > keep_bytes) return 0;
    std::string data(m.size, '\0');
    input.read(data.data(), m.size);
    listing.kept[name] = std::move(data);
    return m.size;
  });
  if (!listing.gzip) {
    std::ifstream end_check(path, std::ios::binary | std::ios::ate);
    for (const auto& [name, m] : listing.members) {
      if (m.offset + m.size > static_cast<uint64_t>(end_check.tellg()))
        throw damaged(path, fmt::format("member {} is truncated", name));
    }
  }
  return listing;
}

std::string read_tar_member(const std::string& path, const TarListing& listing, const std::string& name) {
  const auto member = listing.members.find(name);
  if (member == listing.members.end()) throw damaged(path, fmt::format("{} is not in the archive", name));
  if (auto kept = listing.kept.find(name); kept != listing.kept.end()) return kept->second;
  std::string data(member->second.size, '\0');
  Input in(path);
  if (!in.gzip()) {
    in.skip(member->second.offset);
    in.read(data.data(), data.size());
    return data;
  }
  bool found = false;
  walk(in, path, [&](const std::string& at, const TarMember& m, Input& input) -> uint64_t {
    if (at != name) return 0;
    input.read(data.data(), m.size);
    found = true;
    return UINT64_MAX;
  });
  if (!found) throw damaged(path, fmt::format("{} vanished from the archive", name));
  return data;
}

}  // namespace rankserve::runtime
