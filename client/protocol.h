// What rankserve-client sends and reads: KServe v2 infer bodies for the NeMo (`GPT`) and OPT (`OPT`)
// contracts, Triton generate_stream and OpenAI streaming bodies, and the parsing of their answers.
// Pure functions (no I/O), so the unit tier tests them; client/main.cpp does the talking.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rankserve::client {

// A model's KServe tensor contract (docs/client.md).
enum class Contract {
  nemo,  // inputs prompts, max_length, min_length, use_greedy, add_BOS, ...; output sentences
  opt,   // inputs input, output_length; output output
};

enum class StreamProtocol {
  kserve,       // POST /v2/models/<m>/generate_stream (Triton's generate extension)
  openai,       // POST /v1/completions with "stream": true
  openai_chat,  // POST /v1/chat/completions with "stream": true
};

inline constexpr int kNemoClientMinLength = 20;  // what the NeMo example client sends

// How to generate; unset optionals are not sent (the server's defaults apply).
struct GenerationParams {
  int max_tokens = 30;                    // NeMo max_length, OPT output_length, max_tokens
  int min_length = kNemoClientMinLength;  // NeMo only; sent as min(min_length, max_tokens)
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<uint64_t> seed;
};

// The KServe v2 infer request for a batch of prompts, one sample each (shape [batch, 1]). NeMo: greedy
// and add_BOS true as the example client, greedy off when a temperature or top_p is given. OPT carries
// only input and output_length; temperature, top_p and seed go to request parameters for both.
std::string infer_body(Contract contract, const std::vector<std::string>& prompts, const GenerationParams& params);

// "/v2/models/<model>", the model name percent-encoded (names such as facebook/opt-125m have a '/').
std::string model_path(std::string_view model);

// "sentences" (NeMo) or "output" (OPT).
std::string_view output_name(Contract contract);
std::string_view to_string(Contract contract);

// The strings of output `name` of a KServe v2 infer response, flattened row-major. Throws
// Error(runtime) when the body is not JSON, lacks the output, or it is not a tensor of strings.
std::vector<std::string> infer_outputs(std::string_view body, std::string_view name);

// The message of an error body: KServe {"error": "..."}, OpenAI {"error": {"message": ...}}, or the
// body itself (first line, shortened) when it is neither.
std::string error_message(std::string_view body);

// The contract a model's KServe metadata (GET /v2/models/<m>) declares by its input names; none when
// the body is not metadata or the inputs match neither contract.
std::optional<Contract> contract_from_metadata(std::string_view body);

// Model ids of an OpenAI model list (GET /v1/models); empty when the body is not one.
std::vector<std::string> model_ids(std::string_view body);

// The streaming request body of `protocol` for one prompt. `model` goes into OpenAI bodies (omitted
// when empty); the KServe model is in the path. Without a temperature or top_p, OpenAI bodies say
// temperature 0 (greedy), since OpenAI's own default samples.
std::string stream_body(StreamProtocol protocol, const std::string& model, const std::string& prompt,
                        const GenerationParams& params);

// One server-sent event's data, read: the text piece it carries, or done for OpenAI's "[DONE]".
struct StreamPiece {
  std::string text;
  bool done = false;
};

// Reads the data of one event: generate_stream's text_output, a completion chunk's choices[0].text, a
// chat chunk's choices[0].delta.content (absent pieces are empty). Throws Error(runtime) with the
// server's message for an error event ({"error": ...}) and for data that is not JSON.
StreamPiece stream_piece(StreamProtocol protocol, std::string_view data);

// Python's repr() of a str decoded from UTF-8: single quotes unless the text has ' and no ", backslash
// escapes for \\ \n \r \t and the quote, \xNN / \uNNNN for control and other non-printable characters
// (the common categories of str.isprintable), printable non-ASCII kept. Invalid UTF-8 reads as U+FFFD.
std::string python_repr(std::string_view utf8);

// Python's repr() of a list of str: ['a', "b'c"].
std::string python_list_repr(const std::vector<std::string>& items);

}  // namespace rankserve::client
