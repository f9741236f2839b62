#include "client/protocol.h"

#include <doctest/doctest.h>

#include <boost/json.hpp>

#include "client/options.h"
#include "core/error.h"

using namespace rankserve;
using namespace rankserve::client;
namespace json = boost::json;

namespace {

const json::object& input_named(const json::value& body, std::string_view name) {
  for (const auto& input : body.at("inputs").as_array()) {
    if (input.at("name").as_string() == name) return input.as_object();
  }
  FAIL("no input " << name);
  throw std::logic_error("unreachable");
}

bool has_input(const json::value& body, std::string_view name) {
  for (const auto& input : body.at("inputs").as_array()) {
    if (input.at("name").as_string() == name) return true;
  }
  return false;
}

ClientOptions parse(std::vector<std::string> args) { return parse_client_options(args).options; }

}  // namespace

TEST_CASE("python_repr quotes like Python's str repr") {
  CHECK(python_repr("The capital of Poland is a") == "'The capital of Poland is a'");
  CHECK(python_repr("it's") == R"("it's")");
  CHECK(python_repr(R"(say "hi")") == R"('say "hi"')");
  CHECK(python_repr(R"(it's "both")") == R"('it\'s "both"')");
  CHECK(python_repr("") == "''");
}

TEST_CASE("python_repr escapes backslashes, newlines and control characters") {
  CHECK(python_repr("a\\b") == R"('a\\b')");
  CHECK(python_repr("line1\nline2\r\tend") == R"('line1\nline2\r\tend')");
  CHECK(python_repr(std::string("nul\0bell\x07"
                                "del\x7f",
                                13)) == R"('nul\x00bell\x07del\x7f')");
}

TEST_CASE("python_repr keeps printable unicode and escapes non-printable code points") {
  CHECK(python_repr("Zażółć gęślą jaźń 日本 🎉") == "'Zażółć gęślą jaźń 日本 🎉'");
  CHECK(python_repr("\xC2\x85") == R"('\x85')");  // U+0085, a C1 control
  CHECK(python_repr("a\xC2\xA0"
                    "b") == R"('a\xa0b')");                          // no-break space
  CHECK(python_repr("\xE2\x80\x8B") == R"('\u200b')");               // zero width space
  CHECK(python_repr("\xE2\x80\xA8") == R"('\u2028')");               // line separator
  CHECK(python_repr("\xF3\xA0\x80\x81") == R"('\U000e0001')");       // language tag
  CHECK(python_repr("bad \xFF byte") == "'bad \xEF\xBF\xBD byte'");  // invalid UTF-8 reads as U+FFFD
}

TEST_CASE("python_list_repr prints the OPT client's list") {
  CHECK(python_list_repr({"The capital of Poland is a"}) == "['The capital of Poland is a']");
  CHECK(python_list_repr({"a", "b'c"}) == R"(['a', "b'c"])");
  CHECK(python_list_repr({}) == "[]");
}

TEST_CASE("the NeMo infer request carries every prompt as one batch with the NeMo client's settings") {
  GenerationParams params;
  params.max_tokens = 30;
  const json::value body = json::parse(infer_body(Contract::nemo, {"Thank you for", "Q: Are you going for a lunch?"}, params));
  const auto& prompts = input_named(body, "prompts");
  CHECK(prompts.at("datatype") == "BYTES");
  CHECK(prompts.at("shape") == json::array{2, 1});
  CHECK(prompts.at("data") == json::array{"Thank you for", "Q: Are you going for a lunch?"});
  CHECK(input_named(body, "max_length").at("datatype") == "INT32");
  CHECK(input_named(body, "max_length").at("data") == json::array{30, 30});
  CHECK(input_named(body, "min_length").at("data") == json::array{20, 20});
  CHECK(input_named(body, "use_greedy").at("datatype") == "BOOL");
  CHECK(input_named(body, "use_greedy").at("data") == json::array{true, true});
  CHECK(input_named(body, "add_BOS").at("data") == json::array{true, true});
  CHECK_FALSE(has_input(body, "temperature"));
  CHECK_FALSE(body.as_object().contains("parameters"));
  CHECK(body.at("outputs") == json::array{json::object{{"name", "sentences"}}});
}

TEST_CASE("the NeMo request caps min_length at max_length and samples when a temperature is given") {
  GenerationParams params;
  params.max_tokens = 5;
  params.temperature = 0.5;
  params.top_p = 0.9;
  params.seed = 42;
  const json::value body = json::parse(infer_body(Contract::nemo, {"1 2 3"}, params));
  CHECK(input_named(body, "min_length").at("data") == json::array{5});
  CHECK(input_named(body, "use_greedy").at("data") == json::array{false});
  CHECK(input_named(body, "temperature").at("datatype") == "FP32");
  CHECK(input_named(body, "temperature").at("data").as_array()[0].to_number<double>() == doctest::Approx(0.5));
  CHECK(input_named(body, "top_p").at("data").as_array()[0].to_number<double>() == doctest::Approx(0.9));
  CHECK(body.at("parameters").at("seed").to_number<uint64_t>() == 42);
}

TEST_CASE("the OPT infer request has input and an INT64 output_length") {
  GenerationParams params;
  params.max_tokens = 1;
  const json::value body = json::parse(infer_body(Contract::opt, {"The capital of Poland is"}, params));
  CHECK(body.at("inputs").as_array().size() == 2);
  CHECK(input_named(body, "input").at("datatype") == "BYTES");
  CHECK(input_named(body, "input").at("shape") == json::array{1, 1});
  CHECK(input_named(body, "input").at("data") == json::array{"The capital of Poland is"});
  CHECK(input_named(body, "output_length").at("datatype") == "INT64");
  CHECK(input_named(body, "output_length").at("data") == json::array{1});
  CHECK(body.at("outputs") == json::array{json::object{{"name", "output"}}});
}

TEST_CASE("infer outputs are read from a KServe response, flat or nested") {
  const std::string flat =
      R"({"model_name":"GPT","outputs":[{"name":"sentences","datatype":"BYTES","shape":[2,1],"data":["a b","c"]}]})";
  CHECK(infer_outputs(flat, "sentences") == std::vector<std::string>{"a b", "c"});
  const std::string nested =
      R"({"outputs":[{"name":"x","data":[1]},{"name":"output","datatype":"BYTES","shape":[2,1],"data":[["p"],["q"]]}]})";
  CHECK(infer_outputs(nested, "output") == std::vector<std::string>{"p", "q"});
}

TEST_CASE("an infer response without the expected output is an error naming the output") {
  CHECK_THROWS_WITH_AS(infer_outputs(R"({"outputs":[{"name":"output","data":["x"]}]})", "sentences"),
                       doctest::Contains("has no output 'sentences'"), Error);
  CHECK_THROWS_WITH_AS(infer_outputs(R"({"outputs":[{"name":"sentences","data":[1,2]}]})", "sentences"),
                       doctest::Contains("not a BYTES tensor of strings"), Error);
  CHECK_THROWS_WITH_AS(infer_outputs("<html>oops</html>", "sentences"), doctest::Contains("is not JSON"), Error);
}

TEST_CASE("error bodies give the server's message in either protocol's shape") {
  CHECK(error_message(R"({"error": "model 'GPT' has no input 'foo'"})") == "model 'GPT' has no input 'foo'");
  CHECK(error_message(R"({"error": {"message": "max_tokens must be >= 1", "type": "invalid_request_error"}})") ==
        "max_tokens must be >= 1");
  CHECK(error_message("Bad Gateway\n<html>") == "Bad Gateway");
  CHECK(error_message("") == "(empty body)");
}

TEST_CASE("model metadata tells the NeMo contract from the OPT contract") {
  CHECK(contract_from_metadata(R"({"name":"GPT","inputs":[{"name":"prompts","datatype":"BYTES","shape":[-1,1]}]})") ==
        Contract::nemo);
  CHECK(contract_from_metadata(R"({"name":"OPT","inputs":[{"name":"input"},{"name":"output_length"}]})") == Contract::opt);
  CHECK_FALSE(contract_from_metadata(R"({"name":"X","inputs":[{"name":"INPUT0"}]})").has_value());
  CHECK_FALSE(contract_from_metadata(R"({"error":"no model"})").has_value());
  CHECK(model_ids(R"({"object":"list","data":[{"id":"GPT","object":"model"},{"id":"OPT"}]})") ==
        std::vector<std::string>{"GPT", "OPT"});
  CHECK(model_path("facebook/opt-125m") == "/v2/models/facebook%2Fopt-125m");
}

TEST_CASE("streamed pieces are read from generate_stream, completion and chat chunks") {
  CHECK(stream_piece(StreamProtocol::kserve, R"({"model_name":"GPT","text_output":" four"})").text == " four");
  CHECK(stream_piece(StreamProtocol::openai, R"({"choices":[{"index":0,"text":" 4","finish_reason":null}]})").text == " 4");
  CHECK(stream_piece(StreamProtocol::openai_chat, R"({"choices":[{"delta":{"content":"Hi"}}]})").text == "Hi");
  CHECK(stream_piece(StreamProtocol::openai_chat, R"({"choices":[{"delta":{"role":"assistant"}}]})").text.empty());
  CHECK(stream_piece(StreamProtocol::openai, "[DONE]").done);
  CHECK_THROWS_WITH_AS(stream_piece(StreamProtocol::openai, R"({"error":{"message":"rank 1 failed"}})"),
                       doctest::Contains("rank 1 failed"), Error);
}

TEST_CASE("streaming bodies carry the prompt, max_tokens and the given sampling settings only") {
  GenerationParams params;
  params.max_tokens = 8;
  const json::value kserve = json::parse(stream_body(StreamProtocol::kserve, "GPT", "1 2 3", params));
  CHECK(kserve.at("text_input") == "1 2 3");
  CHECK(kserve.at("parameters") == json::object{{"max_tokens", 8}});
  params.seed = 7;
  params.temperature = 0.25;
  const json::value completion = json::parse(stream_body(StreamProtocol::openai, "GPT", "1 2 3", params));
  CHECK(completion.at("prompt") == "1 2 3");
  CHECK(completion.at("model") == "GPT");
  CHECK(completion.at("stream") == true);
  CHECK(completion.at("seed").to_number<int>() == 7);
  CHECK(completion.at("temperature").to_number<double>() == doctest::Approx(0.25));
  CHECK_FALSE(completion.as_object().contains("top_p"));
  const json::value chat = json::parse(stream_body(StreamProtocol::openai_chat, "", "hi", params));
  CHECK_FALSE(chat.as_object().contains("model"));
  CHECK(chat.at("messages") == json::array{json::object{{"role", "user"}, {"content", "hi"}}});
}

TEST_CASE("client options accept the NeMo and the OPT example clients' flags") {
  const ClientOptions nemo = parse({"--url", "http://n1:8000", "--prompts", "Thank you for", "Q: lunch?", "--output-len", "12"});
  CHECK(nemo.url == "http://n1:8000");
  CHECK(nemo.form == ClientForm::nemo);
  CHECK(nemo.prompts == std::vector<std::string>{"Thank you for", "Q: lunch?"});
  CHECK(nemo.params.max_tokens == 12);
  CHECK(nemo.init_timeout_s == 600);
  const ClientOptions opt =
      parse({"--server-url", "http://n1:8000", "--input", "The capital of Poland is", "--output-length", "1"});
  CHECK(opt.form == ClientForm::opt);
  CHECK(opt.params.max_tokens == 1);
  CHECK(parse({"--url", "u:1", "--max-tokens", "9"}).params.max_tokens == 9);
  CHECK(parse({"--url", "u:1", "--protocol", "openai"}).stream);
}

TEST_CASE("--temperature 0 is greedy decoding on every protocol, and OpenAI bodies say so when it is left out") {
  CHECK_FALSE(parse({"--url", "u:1", "--temperature", "0"}).params.temperature);
  CHECK(*parse({"--url", "u:1", "--temperature", "0.5"}).params.temperature == doctest::Approx(0.5));
  CHECK_THROWS_WITH_AS(parse({"--url", "u:1", "--temperature", "-1"}), doctest::Contains("--temperature=-1 must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(parse({"--url", "u:1", "--temperature", "0", "--top-p", "0.5"}),
                       doctest::Contains("--top-p with --temperature=0"), Error);
  const ClientOptions greedy = parse({"--url", "u:1", "--protocol", "openai", "--temperature", "0"});
  for (StreamProtocol p : {StreamProtocol::openai, StreamProtocol::openai_chat}) {
    const json::value body = json::parse(stream_body(p, "", "1 2 3", greedy.params));
    CHECK(body.at("temperature").to_number<double>() == 0);  // OpenAI's own default (1) samples
  }
  GenerationParams nucleus;
  nucleus.top_p = 0.9;  // top_p alone samples at OpenAI's default temperature
  CHECK_FALSE(json::parse(stream_body(StreamProtocol::openai, "", "1", nucleus)).as_object().contains("temperature"));
  // KServe's generate extension is greedy by default: nothing to say.
  CHECK_FALSE(json::parse(stream_body(StreamProtocol::kserve, "", "1", greedy.params))
                  .at("parameters")
                  .as_object()
                  .contains("temperature"));
}

TEST_CASE("rankserve-client --version is parsed like --help") {
  const auto parsed = parse_client_options({"--version"});
  CHECK(parsed.version);
  CHECK_FALSE(parsed.help);
}

TEST_CASE("client options report every problem at once, naming the flags") {
  CHECK_THROWS_WITH_AS(parse({"--prompts", "a", "--input", "b", "--output-len", "3", "--max-tokens", "4", "--top-p", "2"}),
                       doctest::Contains("--url is required"), Error);
  try {
    parse({"--prompts", "a", "--input", "b", "--output-len", "3", "--max-tokens", "4", "--top-p", "2", "--protocol", "grpc"});
    FAIL("no error");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK(e.code() == ErrorCode::usage);
    CHECK(message.find("--prompts (NeMo form) and --input (OPT form)") != std::string::npos);
    CHECK(message.find("--max-tokens=4 contradicts --output-len=3") != std::string::npos);
    CHECK(message.find("--top-p=2 must be in (0, 1]") != std::string::npos);
    CHECK(message.find("--protocol=grpc is not kserve") != std::string::npos);
  }
}
