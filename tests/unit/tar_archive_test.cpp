#include "runtime/model/tar_archive.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "runtime/core/error.h"

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
      const int rc = std::system(fmt::format("tar --format={} -c{}f {} -C {} . 2>/dev/null", format, compress, archive.string(),
                                             (dir / "src").string()).c_str());
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
