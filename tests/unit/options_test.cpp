#include "launcher/options.h"

#include <doctest/doctest.h>

#include <filesystem>

#include "core/error.h"
#include "launcher/validate.h"

using namespace rankserve;
using namespace rankserve::launcher;

TEST_CASE("command line beats environment beats default") {
  auto parsed = parse_options({"--tp", "2"}, {{"RANKSERVE_TP", "4"}, {"RANKSERVE_PP", "2"}});
  CHECK(parsed.options.tp_size == 2);
  CHECK(parsed.options.pp_size == 2);
  CHECK(parsed.options.timeout_s == 300);
  CHECK(parsed.options.command == "serve");  // as the examples' server.py: no command serves
}

TEST_CASE("accepts the OPT example's --number-of-nodes and --number-of-gpus as aliases") {
  auto parsed = parse_options({"--number-of-nodes", "2", "--number-of-gpus", "4"}, {});
  CHECK(parsed.options.nodes == 2);
  CHECK(parsed.options.gpus == "4");
  CHECK_THROWS_WITH_AS(parse_options({"--nodes", "2", "--number-of-nodes", "3"}, {}),
                       doctest::Contains("--number-of-nodes=3 contradicts --nodes=2"), Error);
}

TEST_CASE("boolean switches read 1/0 from the environment and reject anything else by name") {
  CHECK(parse_options({}, {{"RANKSERVE_DRY_RUN", "1"}}).options.dry_run);
  CHECK_FALSE(parse_options({}, {{"RANKSERVE_DRY_RUN", "0"}}).options.dry_run);
  CHECK_THROWS_WITH_AS(parse_options({}, {{"RANKSERVE_DRY_RUN", "maybe"}}), doctest::Contains("RANKSERVE_DRY_RUN=maybe"), Error);
}

TEST_CASE("malformed values are usage errors that name the option") {
  try {
    parse_options({"--tp", "two"}, {});
    FAIL("accepted --tp two");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::usage);
    CHECK(std::string(e.what()).find("tp") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(parse_options({}, {{"RANKSERVE_TIMEOUT", "soon"}}), doctest::Contains("timeout"), Error);
  CHECK_THROWS_AS(parse_options({"--no-such-flag"}, {}), Error);
}

TEST_CASE("help lists every option with its environment mirror") {
  auto parsed = parse_options({"--help"}, {});
  CHECK(parsed.help);
  for (const char* flag : {"--nodes", "--gpus", "--rank", "--head-url", "--tp", "--pp", "--timeout", "--dry-run",
                           "--advertise-address", "--store-port", "--k8s-service", "RANKSERVE_"}) {
    CHECK(parsed.help_text.find(flag) != std::string::npos);
  }
}

TEST_CASE("the OPT example's --model-name is the model to load when it names one and no --model-path is given") {
  const Options random = parse_options({"--model-name", "random/125M"}, {}).options;
  CHECK(random.model_path == "random/125M");
  CHECK(random.model_name.empty());  // served under the family's default name
  CHECK(random.model_name_was_model);
  const std::string folder = std::filesystem::temp_directory_path().string() + "/rankserve-model-name-test/opt";
  std::filesystem::create_directories(folder);
  CHECK(parse_options({"--model-name", folder}, {}).options.model_path == folder);
  std::filesystem::remove_all(std::filesystem::path(folder).parent_path());
  // With --model-path given, a name with a slash is only a name (vLLM serves names like this).
  const Options named = parse_options({"--model-path", "random/125M", "--model-name", "facebook/opt-125m"}, {}).options;
  CHECK(named.model_path == "random/125M");
  CHECK(named.model_name == "facebook/opt-125m");
  // ... but serve says the weights are random, never silently.
  CHECK(random_weights_warning(named).find("serving the random weights of --model-path random/125M under --model-name "
                                           "facebook/opt-125m") == 0);
  CHECK(random_weights_warning(parse_options({"--model-path", "random/125M", "--model-name", "mine"}, {}).options).empty());
  CHECK(random_weights_warning(random).empty());
  // A hub id without --model-path is the model to download (never random weights under a real model's name).
  const Options hub = parse_options({"--model-name", "facebook/opt-125m@main"}, {}).options;
  CHECK(hub.model_path == "facebook/opt-125m@main");
  CHECK(hub.model_name.empty());
  // A name with slashes that is neither is refused with the spelling to use.
  const Options odd = parse_options({"--model-name", "not/a/model"}, {}).options;
  CHECK(odd.model_path.empty());
  std::string messages;
  for (const auto& p : validate(odd, Topology{}, 0, [](const std::string&) { return true; })) messages += p.message + "\n";
  CHECK(messages.find("--model-name=not/a/model names a model to load") != std::string::npos);
  CHECK(messages.find("--model-path") != std::string::npos);
}

TEST_CASE("--model-repo-id is the NeMo example's spelling of --model-path for a hub id") {
  CHECK(parse_options({"--model-repo-id", "nvidia/nemo-megatron-gpt-1.3B"}, {}).options.model_path ==
        "nvidia/nemo-megatron-gpt-1.3B");
  CHECK_THROWS_AS(parse_options({"--model-repo-id", "a/b", "--model-path", "c/d"}, {}), rankserve::Error);
}

TEST_CASE("the options dump shows the command's own flags (serve's, generate's), never the API key") {
  Options o = parse_options({"serve", "--http-port", "9000", "--api-key", "s3cret", "--max-queue-size", "7"}, {}).options;
  const std::string serve = describe_options(o);
  CHECK(serve.find("\nhttp-port = 9000\n") != std::string::npos);
  CHECK(serve.find("\nmax-queue-size = 7\n") != std::string::npos);
  CHECK(serve.find("\nshutdown-timeout = 30\n") != std::string::npos);
  CHECK(serve.find("s3cret") == std::string::npos);
  CHECK(serve.find("\napi-key = (set, not shown)\n") != std::string::npos);
  const std::string generate =
      describe_options(parse_options({"generate", "--model-path", "random/125M", "--max-tokens", "5"}, {}).options);
  CHECK(generate.find("\nmax-tokens = 5\n") != std::string::npos);
  CHECK(generate.find("http-port") == std::string::npos);
  CHECK(describe_options(parse_options({"check"}, {}).options).find("model-path") == std::string::npos);
}
