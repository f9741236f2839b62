#include "client/options.h"

#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <sstream>

#include "core/error.h"

namespace rankserve::client {

namespace po = boost::program_options;

namespace {

inline constexpr int kDefaultOutputLen = 30;  // the NeMo example client's --output-len

// The one value of a flag given under several names; different values are an error.
std::optional<int> merged(const po::variables_map& vm, const std::vector<std::string>& names,
                          std::vector<std::string>& problems) {
  std::optional<int> value;
  std::string from;
  for (const auto& name : names) {
    if (!vm.count(name)) continue;
    const int v = vm[name].as<int>();
    if (value && *value != v) {
      problems.push_back(fmt::format("options: --{}={} contradicts --{}={} (give one of them)", name, v, from, *value));
    }
    value = v;
    from = name;
  }
  return value;
}

}  // namespace

ParsedClientOptions parse_client_options(const std::vector<std::string>& args) {
  ParsedClientOptions parsed;
  ClientOptions& o = parsed.options;
  std::string protocol = "kserve";
  po::options_description desc("Options", 100);
  // clang-format off
  desc.add_options()
    ("help,h", "Print this help and exit.")
    ("version", "Print the version and exit.")
    ("url", po::value<std::string>(), "Server URL, e.g. http://node01:8000 (the NeMo client's flag), or grpc://node01:8001 "
     "for KServe v2 over gRPC (both forms, --stream through ModelStreamInfer).")
    ("server-url", po::value<std::string>(), "Alias of --url (the OPT client's flag).")
    ("prompts", po::value<std::vector<std::string>>()->multitoken(),
     "NeMo form: prompts sent as one batch; prints a line of 32 '=' before each sentence. Without --prompts "
     "or --input, prompts are read one per line from stdin, or, when stdin is a terminal, asked for "
     "interactively ('> ', until EOF or 'exit') and streamed.")
    ("input", po::value<std::vector<std::string>>()->multitoken(),
     "OPT form: input texts sent as one batch; prints output: ['<text>', ...] (Python's list repr).")
    ("output-len", po::value<int>(), fmt::format("Most tokens to generate (default {}).", kDefaultOutputLen).c_str())
    ("max-tokens", po::value<int>(), "Alias of --output-len.")
    ("output-length", po::value<int>(), "Alias of --output-len (the OPT client's flag).")
    ("min-length", po::value<int>(&o.params.min_length)->default_value(o.params.min_length),
     "NeMo contract: tokens generated before EOS may end the text (the NeMo client sends 20); capped at --output-len.")
    ("temperature", po::value<double>(), "Sampling temperature; 0 (or leaving it out) is greedy decoding, on every protocol.")
    ("top-p", po::value<double>(), "Nucleus sampling mass in (0, 1]; given, decoding is no longer greedy.")
    ("seed", po::value<uint64_t>(), "Sampling seed, for repeatable samples.")
    ("model-name", po::value<std::string>(&o.model_name),
     "Model to ask. Default: GPT for --prompts, OPT for --input; when the server has no such model, the "
     "first model of GET /v1/models whose metadata matches a known contract.")
    ("stream", po::bool_switch(&o.stream), "Print the text as it is generated, one streamed request per prompt.")
    ("protocol", po::value<std::string>(&protocol)->default_value(protocol),
     "Streaming protocol: kserve (POST /v2/models/<m>/generate_stream), openai (/v1/completions) or "
     "openai-chat (/v1/chat/completions); the openai ones imply --stream.")
    ("api-key", po::value<std::string>(&o.api_key), "Send 'Authorization: Bearer <key>' (a server started with --api-key needs it).")
    ("init-timeout-s", po::value<double>(&o.init_timeout_s)->default_value(o.init_timeout_s),
     "Seconds to wait for the server to be ready (/v2/health/ready answers 200; with --protocol openai*, "
     "/v1/models) before giving up.")
    ("timeout-s", po::value<double>(&o.timeout_s)->default_value(o.timeout_s),
     "Deadline of each request in seconds, a streamed answer included.")
    ("wait-only", po::bool_switch(&o.wait_only), "Only wait until the server is ready, print 'server <url> is ready' and exit.");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(ErrorCode::usage, fmt::format("options: {} (see rankserve-client --help)", e.what()));
  }
  std::ostringstream help;
  help << "Usage: rankserve-client --url http://host:8000 [--prompts TEXT...] [options]   (NeMo example form)\n"
          "       rankserve-client --server-url http://host:8000 --input TEXT --output-length N   (OPT form)\n"
          "       rankserve-client --url http://host:8000 --stream [--protocol kserve|openai|openai-chat]\n\n"
       << desc;
  parsed.help_text = help.str();
  parsed.help = vm.count("help") > 0;
  parsed.version = vm.count("version") > 0;
  if (parsed.help || parsed.version) return parsed;

  std::vector<std::string> problems;
  if (vm.count("url") && vm.count("server-url") && vm["url"].as<std::string>() != vm["server-url"].as<std::string>()) {
    problems.push_back("options: --url and --server-url differ (give one of them)");
  }
  if (vm.count("url")) o.url = vm["url"].as<std::string>();
  else if (vm.count("server-url")) o.url = vm["server-url"].as<std::string>();
  else problems.push_back("options: --url is required (e.g. --url http://localhost:8000)");

  if (vm.count("prompts") && vm.count("input")) {
    problems.push_back("options: --prompts (NeMo form) and --input (OPT form) together; give one of them");
  }
  if (vm.count("input")) {
    o.form = ClientForm::opt;
    o.prompts = vm["input"].as<std::vector<std::string>>();
  } else if (vm.count("prompts")) {
    o.prompts = vm["prompts"].as<std::vector<std::string>>();
  }
  o.params.max_tokens = merged(vm, {"output-len", "max-tokens", "output-length"}, problems).value_or(kDefaultOutputLen);
  if (o.params.max_tokens < 1) problems.push_back(fmt::format("options: --output-len={} must be >= 1", o.params.max_tokens));
  if (o.params.min_length < 0) problems.push_back(fmt::format("options: --min-length={} must be >= 0", o.params.min_length));
  if (vm.count("temperature")) {
    const double t = vm["temperature"].as<double>();
    if (!(t >= 0)) problems.push_back(fmt::format("options: --temperature={} must be >= 0 (0 is greedy decoding)", t));
    if (t > 0) o.params.temperature = t;  // 0: greedy, as when left out
    if (t == 0 && vm.count("top-p")) {
      problems.push_back("options: --top-p with --temperature=0 (greedy decoding ignores it; drop one of them)");
    }
  }
  if (vm.count("top-p")) {
    o.params.top_p = vm["top-p"].as<double>();
    if (!(*o.params.top_p > 0 && *o.params.top_p <= 1)) {
      problems.push_back(fmt::format("options: --top-p={} must be in (0, 1]", *o.params.top_p));
    }
  }
  if (vm.count("seed")) o.params.seed = vm["seed"].as<uint64_t>();

  if (protocol == "kserve") o.protocol = StreamProtocol::kserve;
  else if (protocol == "openai") o.protocol = StreamProtocol::openai;
  else if (protocol == "openai-chat") o.protocol = StreamProtocol::openai_chat;
  else problems.push_back(fmt::format("options: --protocol={} is not kserve, openai or openai-chat", protocol));
  if (o.protocol != StreamProtocol::kserve) o.stream = true;  // OpenAI has no batch form of the examples
  if (!(o.init_timeout_s > 0)) problems.push_back(fmt::format("options: --init-timeout-s={} must be > 0", o.init_timeout_s));
  if (!(o.timeout_s > 0)) problems.push_back(fmt::format("options: --timeout-s={} must be > 0", o.timeout_s));
  if (!problems.empty()) {
    std::string message = problems.front();
    for (size_t i = 1; i < problems.size(); ++i) message += "\n" + problems[i];
    throw Error(ErrorCode::usage, message);
  }
  return parsed;
}

}  // namespace rankserve::client
