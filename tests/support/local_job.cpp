#include "tests/support/local_job.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <exception>
#include <thread>

namespace rankserve::testing {
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

}  // namespace

LocalJob::LocalJob(const runtime::ParallelLayout& layout) : ranks_(static_cast<size_t>(layout.world_size)) {
  const int port = free_port();
  run_on_every_rank([&](int rank) {
    runtime::RendezvousConfig c;
    c.rank = rank;
    c.world_size = layout.world_size;
    c.job_id = "local-job";
    c.store_host = "127.0.0.1";
    c.store_port = port;
    c.serve_store = rank == 0;
    c.hostname = "localhost";
    c.advertise_address = "127.0.0.1";
    c.device = "cpu";
    c.timeout = std::chrono::seconds(60);  // against hangs only
    Rank& r = ranks_[static_cast<size_t>(rank)];
    r.rendezvous = std::make_unique<runtime::Rendezvous>(c);
    r.rendezvous->wait_for_peers();
    r.groups = r.rendezvous->create_groups(layout, runtime::Backend::gloo);
  });
}

LocalJob::~LocalJob() {
  for (Rank& r : ranks_) r.groups = {};
  // Rank 0's rendezvous serves the store: it goes last.
  for (size_t i = ranks_.size(); i-- > 0;) ranks_[i].rendezvous.reset();
}

void LocalJob::run_on_every_rank(const std::function<void(int rank)>& work) {
  std::vector<std::exception_ptr> errors(ranks_.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < ranks_.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        work(static_cast<int>(i));
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace rankserve::testing
