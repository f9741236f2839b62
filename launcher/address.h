// Host names and addresses: resolution, the local address that routes to a peer, free ports.
// Used by the launcher before and during the rendezvous; no traffic is sent.
#pragma once

#include <string>

namespace rankserve::launcher {

std::string own_hostname();
bool resolves(const std::string& host);
bool is_loopback(const std::string& address);

// Address of the local interface the kernel would use to reach `host` (a UDP connect, which sends
// nothing). Throws Error(rendezvous) naming `host` when it does not resolve or has no route.
std::string route_address_to(const std::string& host);

// A TCP port free at the time of the call on all interfaces (bind to port 0).
int find_free_port();

}  // namespace rankserve::launcher
