#include "runtime/model/tar_archive.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"

using namespace rankserve;
using namespace rankserve::runtime;
namespace fs = std::filesystem;

TEST_CASE("lists a tar's files with long names and reads them, in place or through gzip") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("rs-tar-{}", ::getpid());
  fs::remove_all(dir);
  const std::string long_dir(120, 'd');  // past ustar's 100-character name field
  fs::create_directories(dir / "src" / long_dir);
  std::ofstream(dir / "src" / "model_config.yaml") << "hidden_size: 8\n";
  std::string big(3000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::ofstream(dir / "src" / long_dir / "weights.bin") << big;
  for (const char* format : {"gnu", "pax", "ustar"}) {
    for (const char* compress : {"", "z"}) {
      INFO(format << " " << compress);
      const fs::path archive = dir / fmt::format("{}.tar{}", format, compress);
      const int rc = std::system(
          fmt::format("tar --format={} -c{}f {} -C {} . 2>/dev/null", format, compress, archive.string(), (dir / "src").string())
              .c_str());
      if (std::string(format) == "ustar" && rc != 0) continue;  // ustar cannot hold the long name at all
      REQUIRE(rc == 0);
      // Keep members up to 100 bytes from the listing pass; the larger one needs another pass (gzip).
      const TarListing listing = list_tar(archive.string(), 100);
      CHECK(listing.gzip == (compress[0] == 'z'));
      REQUIRE(listing.members.count("model_config.yaml") == 1);
      REQUIRE(listing.members.count(long_dir + "/weights.bin") == 1);
      CHECK(listing.members.at(long_dir + "/weights.bin").size == big.size());
      CHECK(listing.kept.count(long_dir + "/weights.bin") == 0);
      CHECK(read_tar_member(archive.string(), listing, "model_config.yaml") == "hidden_size: 8\n");
      CHECK(read_tar_member(archive.string(), listing, long_dir + "/weights.bin") == big);
      CHECK_THROWS_WITH_AS(read_tar_member(archive.string(), listing, "missing.txt"), doctest::Contains("missing.txt"), Error);
    }
  }
  // A truncated gzip archive names the archive and says where the data ended.
  const fs::path gz = dir / "gnu.tarz";
  const fs::path cut = dir / "cut.nemo";
  fs::copy_file(gz, cut);
  fs::resize_file(cut, fs::file_size(gz) / 2);
  CHECK_THROWS_WITH_AS(list_tar(cut.string()), doctest::Contains(cut.c_str()), Error);
  fs::remove_all(dir);
}

namespace {

// A ustar header block of `type` whose size field says `size` (octal); the reader ignores checksums.
std::string tar_header(const std::string& name, char type, uint64_t size) {
  std::string block(512, '\0');
  block.replace(0, name.size(), name);
  const std::string octal = fmt::format("{:011o}", size);
  block.replace(124, octal.size(), octal);
  block[156] = type;
  block.replace(257, 5, "ustar");
  return block;
}

std::string write_temp(const std::string& stem, const std::string& bytes) {
  const fs::path path = fs::temp_directory_path() / fmt::format("{}-{}", stem, ::getpid());
  std::ofstream(path, std::ios::binary) << bytes;
  return path.string();
}

}  // namespace

TEST_CASE("a malformed PAX record or an oversized long-name header is a load error naming the archive") {
  // Found by tests/fuzz/tar_archive_fuzz: std::stoul threw std::invalid_argument ("stoul") for a
  // record length that is not a number, and a long-name header's size was allocated unchecked.
  const std::string records = "xx path=a\n";
  std::string pax = tar_header("PaxHeader", 'x', records.size()) + records;
  pax.resize(1024, '\0');
  pax += tar_header("a", '0', 0) + std::string(1024, '\0');
  const std::string bad_pax = write_temp("rs-bad-pax", pax);
  const std::string pax_error = bad_pax + ": PAX header record at byte 0 of its header is malformed";
  CHECK_THROWS_WITH_AS(list_tar(bad_pax), doctest::Contains(pax_error.c_str()), Error);
  const std::string huge_name =
      write_temp("rs-huge-name", tar_header("././@LongLink", 'L', uint64_t{8} << 30) + std::string(1024, '\0'));
  const std::string name_error = huge_name + ": a GNU long-name header at byte 0 claims 8589934592 bytes";
  CHECK_THROWS_WITH_AS(list_tar(huge_name), doctest::Contains(name_error.c_str()), Error);
  fs::remove(bad_pax);
  fs::remove(huge_name);
}
