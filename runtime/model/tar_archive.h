// Lists the members of an uncompressed tar archive (a .nemo file), so they can be read or mapped
// in place. Internal to the runtime.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace rankserve::runtime {

struct TarMember {
  uint64_t offset = 0;  // of the member's data in the archive, bytes
  uint64_t size = 0;
};

// Regular files by name, without a leading "./". Reads ustar, GNU long names and PAX paths.
// Throws Error(load) naming the archive: gzip-compressed (extract it first), damaged or truncated.
std::map<std::string, TarMember> list_tar(const std::string& path);

// A member's bytes as a string (configs and vocabularies).
std::string read_tar_member(const std::string& path, const TarMember& member);

}  // namespace rankserve::runtime
