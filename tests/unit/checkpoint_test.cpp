#include "runtime/model/checkpoint.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "runtime/core/error.h"
#include "runtime/model/weight_source.h"

using namespace rankserve;
using namespace rankserve::runtime;
namespace fs = std::filesystem;

namespace {

std::string temp_file(const std::string& name) { return (fs::temp_directory_path() / (name + std::to_string(::getpid()))).string(); }

}  // namespace

TEST_CASE("reads back row and column slices of what was written, converting the dtype") {
  const std::string path = temp_file("rs-st-");
  at::Tensor a = at::arange(12, at::kFloat).reshape({3, 4});
  at::Tensor b = at::arange(5, at::kFloat).to(at::kHalf);
  write_safetensors(path, {{"a", a}, {"b", b}});
  auto checkpoint = MappedCheckpoint::open(path);
  CHECK(checkpoint.shape("a") == std::vector<int64_t>{3, 4});
  CHECK(at::equal(checkpoint.read("a", {0, 1, 2}, at::kFloat), a.narrow(0, 1, 2)));
  CHECK(at::equal(checkpoint.read("a", {1, 2, 2}, at::kFloat), a.narrow(1, 2, 2)));
  CHECK(at::equal(checkpoint.read("b", {0, 0, -1}, at::kFloat), at::arange(5, at::kFloat)));
  CHECK(checkpoint.bytes_read() == 2 * 4 * 4 + 3 * 2 * 4 + 5 * 2);
  CHECK_THROWS_WITH_AS(checkpoint.read("a", {0, 2, 5}, at::kFloat), doctest::Contains("out of range"), Error);
  fs::remove(path);
}

TEST_CASE("a damaged header is a load error naming the file") {
  const std::string path = temp_file("rs-bad-");
  std::ofstream(path, std::ios::binary) << std::string("\x10\0\0\0\0\0\0\0{not json}      ", 24);
  try {
    MappedCheckpoint::open(path);
    FAIL("accepted a damaged file");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::load);
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
  std::ofstream(path, std::ios::binary) << "abc";
  CHECK_THROWS_WITH_AS(MappedCheckpoint::open(path), doctest::Contains("shorter than the 8-byte header"), Error);
  fs::remove(path);
}

TEST_CASE("random weights do not depend on how the tensor is sliced") {
  auto source = random_source(7);
  const std::vector<int64_t> shape{6, 10};
  at::Tensor whole = source->read("w", shape, {0, 0, -1}, at::kFloat, Init::normal);
  CHECK(at::equal(source->read("w", shape, {0, 2, 3}, at::kFloat, Init::normal), whole.narrow(0, 2, 3)));
  CHECK(at::equal(source->read("w", shape, {1, 5, 5}, at::kFloat, Init::normal), whole.narrow(1, 5, 5)));
  CHECK_FALSE(at::equal(random_source(8)->read("w", shape, {0, 0, -1}, at::kFloat, Init::normal), whole));
  const double std = whole.std().item<double>();
  CHECK(std > 0.01);
  CHECK(std < 0.03);
}
