#include "launcher/env.h"

extern char** environ;

namespace rankserve::launcher {

EnvMap capture_environment() {
  EnvMap env;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string text(*entry);
    size_t eq = text.find('=');
    if (eq != std::string::npos) env.emplace(text.substr(0, eq), text.substr(eq + 1));
  }
  return env;
}

}  // namespace rankserve::launcher
