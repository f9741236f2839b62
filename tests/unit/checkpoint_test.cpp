#include "runtime/model/checkpoint.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "runtime/model/tensor_file.h"
#include "runtime/model/weight_source.h"

using namespace rankserve;
using namespace rankserve::runtime;
namespace fs = std::filesystem;

namespace {

std::string temp_file(const std::string& name) {
  return (fs::temp_directory_path() / (name + std::to_string(::getpid()))).string();
}

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

// The cases below were found by tests/fuzz (safetensors_fuzz, torch_pickle_fuzz).
TEST_CASE("a safetensors shape with negative sizes or a product past 64 bits is a load error naming the tensor") {
  const std::string path = temp_file("rs-shape-");
  for (const std::string shape : {"[-1,-4]", "[4294967296,4294967296]"}) {
    INFO(shape);
    std::string header = R"({"x":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[0,16]}})";
    header.resize((header.size() + 7) / 8 * 8, ' ');
    const uint64_t length = header.size();
    std::ofstream(path, std::ios::binary) << std::string(reinterpret_cast<const char*>(&length), 8) << header
                                          << std::string(16, '\0');
    CHECK_THROWS_WITH_AS(MappedCheckpoint::open(path), doctest::Contains("tensor x has shape ["), Error);
  }
  fs::remove(path);
}

TEST_CASE("a tensor entry whose strides are negative or fewer than its dimensions is refused before any view") {
  TensorFile file(std::string(64, '\0'), "t.bin");
  TensorEntry backwards;
  backwards.shape = {2, 2};
  backwards.strides = {-1, 1};  // would reach one element before the file
  backwards.offset = 0;
  CHECK_THROWS_WITH_AS(file.add("backwards", backwards),
                       doctest::Contains("tensor backwards has shape [2, 2] and strides [-1, 1]"), Error);
  TensorEntry short_strides;
  short_strides.shape = {2, 2};
  short_strides.strides = {1};
  CHECK_THROWS_WITH_AS(file.add("short", short_strides), doctest::Contains("one stride per dimension"), Error);
  TensorEntry fine;
  fine.shape = {2, 2};
  fine.strides = {1, 2};  // a transposed 2x2 view
  file.add("fine", fine);
  CHECK(file.entries().count("fine") == 1);
}

TEST_CASE("the pickle reader survives self-referencing and deeply nested lists") {
  // A list appended to itself through the memo (a cycle), then a state_dict with no tensors.
  CHECK(read_torch_pickle(std::string("\x80\x02]q\x00h\x00"
                                      "a}.",
                                      10))
            .empty());
  // A million nested lists: freeing them must not recurse once per level.
  const size_t depth = 1000000;
  CHECK(read_torch_pickle("\x80\x02" + std::string(depth, ']') + std::string(depth - 1, 'a') + "}.").empty());
}
