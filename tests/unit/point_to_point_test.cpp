// Point-to-point send and receive over Gloo: two ranks of one job as two threads of this process.
#include <doctest/doctest.h>

#include <numeric>

#include "runtime/dist/communicator.h"
#include "tests/support/local_job.h"

using namespace rankserve::runtime;
using rankserve::testing::LocalJob;

TEST_CASE("Gloo sends and receives between the two stages of a pipeline, in order") {
  LocalJob job(ParallelLayout{2, 1, 2});  // --pp 2: the PP group is {0, 1}
  REQUIRE(job.groups(0).pp->size() == 2);
  // Three hand-offs of different sizes and types, then one back the other way.
  std::vector<float> sent(1000), got(1000, 0.0f);
  std::iota(sent.begin(), sent.end(), 0.5f);
  std::vector<std::byte> bytes_sent(37, std::byte{7}), bytes_got(37);
  std::vector<float> back_sent{1, 2, 3}, back_got(3);
  job.run_on_every_rank([&](int rank) {
    Communicator& pp = *job.groups(rank).pp;
    if (rank == 0) {
      pp.send(Buffer{sent.data(), sent.size(), ElementType::float32, false}, 1);
      pp.send(Buffer{bytes_sent.data(), bytes_sent.size(), ElementType::byte, false}, 1);
      pp.recv(Buffer{back_got.data(), back_got.size(), ElementType::float32, false}, 1);
    } else {
      pp.recv(Buffer{got.data(), got.size(), ElementType::float32, false}, 0);
      pp.recv(Buffer{bytes_got.data(), bytes_got.size(), ElementType::byte, false}, 0);
      pp.send(Buffer{back_sent.data(), back_sent.size(), ElementType::float32, false}, 0);
    }
  });
  CHECK(got == sent);
  CHECK(bytes_got == bytes_sent);
  CHECK(back_got == back_sent);
  // Device buffers need NCCL: Gloo refuses them instead of reading device memory.
  CHECK_THROWS(job.groups(0).pp->send(Buffer{sent.data(), 1, ElementType::float32, true}, 1));
}
