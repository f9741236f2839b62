#include "launcher/address.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "core/error.h"

namespace rankserve::launcher {
namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfoPtr resolve(const std::string& host, int socktype) {
  addrinfo hints{};
  hints.ai_family = AF_INET;  // the rendezvous and Gloo use IPv4
  hints.ai_socktype = socktype;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), "9", &hints, &result) != 0) return nullptr;
  return AddrInfoPtr(result);
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string own_hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

bool resolves(const std::string& host) { return resolve(host, SOCK_STREAM) != nullptr; }

bool is_loopback(const std::string& address) {
  in_addr addr{};
  if (inet_pton(AF_INET, address.c_str(), &addr) != 1) return false;
  return (ntohl(addr.s_addr) >> 24) == 127;
}

std::string route_address_to(const std::string& host) {
  AddrInfoPtr info = resolve(host, SOCK_DGRAM);
  if (!info) throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: host '{}' does not resolve", host));
  Fd sock{::socket(AF_INET, SOCK_DGRAM, 0)};
  if (sock.fd < 0 || ::connect(sock.fd, info->ai_addr, info->ai_addrlen) != 0) {
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: no route to host '{}': {}", host, std::strerror(errno)));
  }
  sockaddr_in local{};
  socklen_t length = sizeof(local);
  ::getsockname(sock.fd, reinterpret_cast<sockaddr*>(&local), &length);
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text));
  return text;
}

int find_free_port() {
  Fd sock{::socket(AF_INET, SOCK_STREAM, 0)};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  socklen_t length = sizeof(addr);
  if (sock.fd < 0 || ::bind(sock.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(sock.fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    throw Error(ErrorCode::rendezvous, fmt::format("rendezvous: cannot find a free TCP port: {}", std::strerror(errno)));
  }
  return ntohs(addr.sin_port);
}

}  // namespace rankserve::launcher
