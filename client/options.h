// rankserve-client's command line: the NeMo example client's flags (--url, --prompts, --output-len,
// --init-timeout-s, --model-name), the OPT example client's (--server-url, --input, --output-length)
// and streaming. Parsed once in client/main.cpp; read-only afterwards.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "client/protocol.h"

namespace rankserve::client {

// Which example's output the user gets.
enum class ClientForm {
  nemo,  // --prompts (or prompts on stdin): a line of 32 '=' then each sentence
  opt,   // --input: "output: ['<text>']"
};

struct ClientOptions {
  std::string url;  // --url / --server-url
  ClientForm form = ClientForm::nemo;
  std::vector<std::string> prompts;                  // --prompts or --input; empty: stdin or interactive
  std::string model_name;                            // --model-name; empty: detect (GPT for --prompts, OPT for --input)
  GenerationParams params;                           // --output-len/--max-tokens/--output-length, --min-length, ...
  double init_timeout_s = 600;                       // --init-timeout-s: readiness deadline, seconds
  double timeout_s = 600;                            // --timeout-s: deadline of each request, seconds
  bool stream = false;                               // --stream
  StreamProtocol protocol = StreamProtocol::kserve;  // --protocol
  std::string api_key;                               // --api-key: sent as Authorization: Bearer
  bool wait_only = false;                            // --wait-only: readiness probe
};

struct ParsedClientOptions {
  ClientOptions options;
  bool help = false;
  bool version = false;
  std::string help_text;
};

// Parses argv (without the program name). Throws Error(usage) naming the flag; several problems are
// reported together, one per line.
ParsedClientOptions parse_client_options(const std::vector<std::string>& args);

}  // namespace rankserve::client
