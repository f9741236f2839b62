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

TEST_CASE("lists a tar's files with long names, reads them in place, and refuses gzip") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("rs-tar-{}", ::getpid());
  fs::remove_all(dir);
  const std::string long_dir(120, 'd');  // past ustar's 100-character name field
  fs::create_directories(dir / "src" / long_dir);
  std::ofstream(dir / "src" / "model_config.yaml") << "hidden_size: 8\n";
  std::ofstream(dir / "src" / long_dir / "weights.bin") << std::string(1000, 'x');
  for (const char* format : {"gnu", "pax", "ustar"}) {
    INFO(format);
    const fs::path archive = dir / fmt::format("{}.tar", format);
    const int rc = std::system(fmt::format("tar --format={} -cf {} -C {} . 2>/dev/null", format, archive.string(),
                                           (dir / "src").string()).c_str());
    if (std::string(format) == "ustar" && rc != 0) continue;  // ustar cannot hold the long name at all
    REQUIRE(rc == 0);
    auto members = list_tar(archive.string());
    REQUIRE(members.count("model_config.yaml") == 1);
    REQUIRE(members.count(long_dir + "/weights.bin") == 1);
    CHECK(members.at(long_dir + "/weights.bin").size == 1000);
    CHECK(read_tar_member(archive.string(), members.at("model_config.yaml")) == "hidden_size: 8\n");
    CHECK(read_tar_member(archive.string(), members.at(long_dir + "/weights.bin")) == std::string(1000, 'x'));
  }
  const fs::path gz = dir / "model.nemo";
  REQUIRE(std::system(fmt::format("tar -czf {} -C {} model_config.yaml", gz.string(), (dir / "src").string()).c_str()) == 0);
  CHECK_THROWS_WITH_AS(list_tar(gz.string()), doctest::Contains("gzip-compressed .nemo"), Error);
  fs::remove_all(dir);
}
