// LD_PRELOAD shim for tests: getaddrinfo answers after 30 s (a resolver that hangs, as a DNS server
// that drops queries makes it). Everything else is the C library's.
#include <dlfcn.h>
#include <netdb.h>
#include <unistd.h>

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  using Real = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
  auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "getaddrinfo"));
  sleep(30);
  return real(node, service, hints, res);
}
