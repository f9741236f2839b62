// rankserve-client: the NeMo and OPT example clients in one binary (docs/client.md), plus streaming and
// an interactive prompt for `srun --pty`. Waits for the server's readiness first; with --wait-only (or
// nothing to ask) it is the readiness probe batch scripts use.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "client/options.h"
#include "client/session.h"
#include "core/error.h"
#include "core/log.h"

using namespace rankserve;
using namespace rankserve::client;

namespace {

constexpr std::string_view kSeparator = "================================";  // 32 '=', as the NeMo client prints

std::vector<std::string> read_prompts(std::istream& in) {
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(line);
  }
  return prompts;
}

void print_batch(const ClientOptions& options, const std::vector<std::string>& texts) {
  if (options.form == ClientForm::opt) {
    std::printf("output: %s\n", python_list_repr(texts).c_str());
    return;
  }
  for (const auto& text : texts) std::printf("%.*s\n%s\n", static_cast<int>(kSeparator.size()), kSeparator.data(), text.c_str());
}

// Each prompt streamed in turn, printed as the batch forms print it: the prompt, then its continuation.
void stream_each(const ClientSession& session, const ClientOptions& options, const ServedModel& model,
                 const std::vector<std::string>& prompts) {
  for (const auto& prompt : prompts) {
    if (options.form == ClientForm::nemo) std::printf("%.*s\n", static_cast<int>(kSeparator.size()), kSeparator.data());
    std::fputs(prompt.c_str(), stdout);
    try {
      session.stream(model, prompt, stdout);
    } catch (const Error&) {
      std::fputc('\n', stdout);  // end the partial line before the FATAL line
      std::fflush(stdout);
      throw;
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
}

// `> ` prompts until EOF or "exit"; each answer is streamed. A failed request is reported and the
// prompt comes back, so a long session survives one bad request.
void interactive(const ClientSession& session, const ServedModel& model) {
  for (;;) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    std::string line;
    if (!std::getline(std::cin, line)) {
      std::fputc('\n', stdout);
      return;
    }
    if (line == "exit" || line == "quit") return;
    if (line.empty()) continue;
    try {
      session.stream(model, line, stdout);
      std::fputc('\n', stdout);
    } catch (const Error& e) {
      std::fputc('\n', stdout);
      std::fflush(stdout);
      log::error("{}", e.what());
    }
  }
}

int run(int argc, char** argv) {
  const ParsedClientOptions parsed = parse_client_options(std::vector<std::string>(argv + 1, argv + argc));
  if (parsed.help) {
    std::cout << parsed.help_text;
    return 0;
  }
  if (parsed.version) {
    std::cout << "rankserve-client " RANKSERVE_VERSION "\n";
    return 0;
  }
  const ClientOptions& options = parsed.options;
  const ClientSession session(options);

  std::vector<std::string> prompts = options.prompts;
  const bool terminal = isatty(STDIN_FILENO) == 1;
  const bool ask = !options.wait_only && prompts.empty() && terminal;
  if (!options.wait_only && prompts.empty() && !terminal) prompts = read_prompts(std::cin);

  session.wait_ready();
  if (options.wait_only || (prompts.empty() && !ask)) {
    std::printf("server %s is ready\n", options.url.c_str());
    return 0;
  }
  log::info("server {} is ready", options.url);

  if (ask) {
    const ServedModel model = session.resolve_model(false);
    log::info("model '{}'; type a prompt, or exit", model.name);
    interactive(session, model);
    return 0;
  }
  if (options.stream) {
    stream_each(session, options, session.resolve_model(false), prompts);
    return 0;
  }
  const ServedModel model = session.resolve_model(true);
  print_batch(options, session.infer(model, prompts));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  log::Config config;
  config.host = "client";
  log::configure(config);
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    log::fatal("{}", e.what());
    return exit_code(e.code());
  }
}
