// .nemo tar archives (runtime/model/tar_archive.cpp): ustar, GNU long names, PAX paths, gzip. The
// reader takes a path, so the input is written to a memfd opened as /proc/self/fd/N. Besides the
// sanitizers it checks that an uncompressed member's bytes are the archive's bytes at its offset and
// that a member read again equals the one the listing kept. Input: the archive.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "runtime/model/tar_archive.h"
#include "tests/fuzz/fuzz_support.h"

using namespace rankserve;

namespace {

constexpr uint64_t kKeepBytes = 512;         // members up to this size are kept by a gzip listing
constexpr uint64_t kMaxReadBytes = 1 << 20;  // a gzip member claiming more is not read back

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = ::memfd_create("tar_archive_fuzz", 0);
  if (fd < 0 || ::write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  std::optional<runtime::TarListing> listing;
  fuzz::expect_only(ErrorCode::load, [&] { listing = runtime::list_tar(path, kKeepBytes); });
  if (listing) {
    for (const auto& [name, member] : listing->members) {
      if (listing->gzip && member.size > kMaxReadBytes) continue;
      fuzz::expect_only(ErrorCode::load, [&, &name = name, &member = member] {
        const std::string bytes = runtime::read_tar_member(path, *listing, name);
        if (bytes.size() != member.size) std::abort();
        if (!listing->gzip && bytes != fuzz::as_text(data, size).substr(member.offset, member.size)) std::abort();
        if (auto kept = listing->kept.find(name); kept != listing->kept.end() && kept->second != bytes) std::abort();
      });
    }
  }
  ::close(fd);
  return 0;
}
