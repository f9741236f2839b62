#include "runtime/model/tar_archive.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "runtime/core/error.h"

namespace rankserve::runtime {
namespace {

constexpr uint64_t kBlock = 512;

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

// PAX extended header records: "<length> <key>=<value>\n"; returns the path if present.
std::string pax_path(const std::string& records) {
  for (size_t at = 0; at < records.size();) {
    const size_t space = records.find(' ', at);
    if (space == std::string::npos) break;
    const size_t length = std::stoul(records.substr(at, space - at));
    if (length == 0) break;
    const std::string record = records.substr(space + 1, length - (space + 1 - at) - 1);
    if (record.rfind("path=", 0) == 0) return record.substr(5);
    at += length;
  }
  return "";
}

}  // namespace

std::map<std::string, TarMember> list_tar(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::load, fmt::format("load: {}: cannot open", path));
  auto fail = [&](const std::string& what) { return Error(ErrorCode::load, fmt::format("load: {}: {}", path, what)); };
  char magic[2] = {};
  in.read(magic, 2);
  if (static_cast<unsigned char>(magic[0]) == 0x1f && static_cast<unsigned char>(magic[1]) == 0x8b) {
    throw fail("a gzip-compressed .nemo (NeMo before 1.7): extract it (tar xzf FILE -C FOLDER) and pass the folder");
  }
  in.seekg(0);
  std::map<std::string, TarMember> members;
  std::string long_name;
  uint64_t offset = 0;
  char header[kBlock];
  if (!in.read(header, kBlock)) throw fail("not a tar archive (shorter than one 512-byte block)");
  for (bool more = true; more; more = static_cast<bool>(in.read(header, kBlock))) {
    offset += kBlock;
    if (header[0] == '\0') break;  // end-of-archive blocks
    if (std::memcmp(header + 257, "ustar", 5) != 0) throw fail(fmt::format("not a tar archive (no ustar header at byte {})", offset - kBlock));
    const uint64_t size = octal(header + 124, 12);
    const char type = header[156];
    std::string name = text(header, 100);
    const std::string prefix = text(header + 345, 155);
    if (!prefix.empty()) name = prefix + "/" + name;
    if (type == 'L' || type == 'x') {  // the next member's long name (GNU) or PAX records
      std::string data(size, '\0');
      if (!in.read(data.data(), static_cast<std::streamsize>(size))) throw fail("truncated");
      long_name = type == 'L' ? std::string(data.c_str()) : pax_path(data);
    } else {
      if (!long_name.empty()) name = long_name;
      long_name.clear();
      while (name.rfind("./", 0) == 0) name = name.substr(2);
      if (type == '0' || type == '\0') members[name] = TarMember{offset, size};
    }
    const uint64_t padded = (size + kBlock - 1) / kBlock * kBlock;
    offset += padded;
    in.seekg(static_cast<std::streamoff>(offset));
  }
  std::ifstream end_check(path, std::ios::binary | std::ios::ate);
  for (const auto& [name, m] : members) {
    if (m.offset + m.size > static_cast<uint64_t>(end_check.tellg())) throw fail(fmt::format("member {} is truncated", name));
  }
  return members;
}

std::string read_tar_member(const std::string& path, const TarMember& member) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(member.offset));
  std::string data(member.size, '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(member.size))) {
    throw Error(ErrorCode::load, fmt::format("load: {}: truncated member", path));
  }
  return data;
}

}  // namespace rankserve::runtime
