// Point-to-point send and receive over Gloo: two ranks of one job as two threads of this process.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <exception>
#include <memory>
#include <numeric>
#include <thread>

#include "runtime/dist/communicator.h"
#include "runtime/dist/rendezvous.h"

using namespace rankserve::runtime;

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

struct Rank {
  std::unique_ptr<Rendezvous> rendezvous;
  ProcessGroups groups;
  std::exception_ptr error;
};

// Both ranks of a world of 2 with --pp 2 (the PP group is {0, 1}), on Gloo.
void join(Rank& rank, int global_rank, int port) {
  try {
    RendezvousConfig c;
    c.rank = global_rank;
    c.world_size = 2;
    c.job_id = "p2p-test";
    c.store_host = "127.0.0.1";
    c.store_port = port;
    c.serve_store = global_rank == 0;
    c.hostname = "localhost";
    c.advertise_address = "127.0.0.1";
    c.device = "cpu";
    c.timeout = std::chrono::seconds(60);  // against hangs only
    rank.rendezvous = std::make_unique<Rendezvous>(c);
    rank.rendezvous->wait_for_peers();
    rank.groups = rank.rendezvous->create_groups(ParallelLayout{2, 1, 2}, Backend::gloo);
  } catch (...) {
    rank.error = std::current_exception();
  }
}

}  // namespace

TEST_CASE("Gloo sends and receives between the two stages of a pipeline, in order") {
  const int port = free_port();
  Rank first, second;
  {
    std::thread other([&] { join(second, 1, port); });
    join(first, 0, port);
    other.join();
  }
  if (first.error) std::rethrow_exception(first.error);
  if (second.error) std::rethrow_exception(second.error);
  Communicator& a = *first.groups.pp;
  Communicator& b = *second.groups.pp;
  REQUIRE(a.size() == 2);
  // Three hand-offs of different sizes and types, then one back the other way.
  std::vector<float> sent(1000), got(1000, 0.0f);
  std::iota(sent.begin(), sent.end(), 0.5f);
  std::vector<std::byte> bytes_sent(37, std::byte{7}), bytes_got(37);
  std::vector<float> back_sent{1, 2, 3}, back_got(3);
  std::exception_ptr receiver_error;
  std::thread receiver([&] {
    try {
      b.recv(Buffer{got.data(), got.size(), ElementType::float32, false}, 0);
      b.recv(Buffer{bytes_got.data(), bytes_got.size(), ElementType::byte, false}, 0);
      b.send(Buffer{back_sent.data(), back_sent.size(), ElementType::float32, false}, 0);
    } catch (...) {
      receiver_error = std::current_exception();
    }
  });
  std::exception_ptr sender_error;
  try {
    a.send(Buffer{sent.data(), sent.size(), ElementType::float32, false}, 1);
    a.send(Buffer{bytes_sent.data(), bytes_sent.size(), ElementType::byte, false}, 1);
    a.recv(Buffer{back_got.data(), back_got.size(), ElementType::float32, false}, 1);
  } catch (...) {
    sender_error = std::current_exception();  // the receiver gives up at the deadline; join it first
  }
  receiver.join();
  if (sender_error) std::rethrow_exception(sender_error);
  if (receiver_error) std::rethrow_exception(receiver_error);
  CHECK(got == sent);
  CHECK(bytes_got == bytes_sent);
  CHECK(back_got == back_sent);
  // Device buffers need NCCL: Gloo refuses them instead of reading device memory.
  CHECK_THROWS(a.send(Buffer{sent.data(), 1, ElementType::float32, true}, 1));
  // Groups go before the store their rendezvous serves.
  second.groups = {};
  first.groups = {};
}
