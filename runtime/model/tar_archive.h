// Reads the members of a tar archive (a .nemo file): an uncompressed one in place, so members can be
// mapped, or a gzip-compressed one (NeMo before 1.7) by decompressing it front to back. Internal to
// the runtime.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace rankserve::runtime {

struct TarMember {
  uint64_t offset = 0;  // of the member's data: in the file, or in the decompressed stream (gzip)
  uint64_t size = 0;    // bytes
};

struct TarListing {
  bool gzip = false;
  std::map<std::string, TarMember> members;  // regular files by name, without a leading "./"
  std::map<std::string, std::string> kept;   // gzip: the bytes of members up to the listing's keep limit
};

// One pass over the archive. Reads ustar, GNU long names and PAX paths. A gzip archive is
// decompressed for it, keeping members of at most `keep_bytes` (configs, vocabularies).
// Throws Error(load) naming the archive when it is damaged or truncated.
TarListing list_tar(const std::string& path, uint64_t keep_bytes = 0);

// A member's bytes: read in place (uncompressed) or from `kept`, else by another decompression pass.
std::string read_tar_member(const std::string& path, const TarListing& listing, const std::string& name);

}  // namespace rankserve::runtime
