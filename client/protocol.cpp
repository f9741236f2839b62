#include "client/protocol.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include "core/error.h"

namespace rankserve::client {

namespace json = boost::json;

namespace {

// A KServe v2 JSON tensor of shape [batch, 1]
// (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
template <typename T>
json::object column(std::string_view name, std::string_view datatype, const std::vector<T>& values) {
  return json::object{
      {"name", name}, {"shape", json::array{values.size(), 1}}, {"datatype", datatype}, {"data", json::value_from(values)}};
}

template <typename T>
json::object column_of(std::string_view name, std::string_view datatype, size_t batch, const T& value) {
  return column(name, datatype, std::vector<T>(batch, value));
}

// Request-level parameters for what a contract has no input for.
json::object sampling_parameters(const GenerationParams& params, bool with_sampling) {
  json::object out;
  if (with_sampling && params.temperature) out["temperature"] = *params.temperature;
  if (with_sampling && params.top_p) out["top_p"] = *params.top_p;
  if (params.seed) out["seed"] = *params.seed;
  return out;
}

json::value parse_json(std::string_view body, std::string_view what) {
  json::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec) {
    throw Error(ErrorCode::runtime, fmt::format("client: {} is not JSON ({}): {}", what, ec.message(),
                                                body.substr(0, std::min<size_t>(body.size(), 200))));
  }
  return value;
}

void flatten_strings(const json::value& value, std::vector<std::string>& out, bool& all_strings) {
  if (value.is_string()) out.emplace_back(value.get_string());
  else if (value.is_array()) {
    for (const auto& item : value.get_array()) flatten_strings(item, out, all_strings);
  } else {
    all_strings = false;
  }
}

// The error text of a parsed error body, if it is one.
std::optional<std::string> error_in(const json::value& value) {
  const json::object* object = value.if_object();
  if (!object) return std::nullopt;
  const json::value* error = object->if_contains("error");
  if (!error) return std::nullopt;
  if (error->is_string()) return std::string(error->get_string());
  if (const json::object* detail = error->if_object()) {
    if (const json::value* message = detail->if_contains("message"); message && message->is_string()) {
      return std::string(message->get_string());
    }
  }
  return json::serialize(*error);
}

const json::value* path(const json::value& root, std::initializer_list<std::string_view> keys_and_first) {
  const json::value* at = &root;
  for (std::string_view key : keys_and_first) {
    if (key == "[0]") {
      const json::array* array = at->if_array();
      if (!array || array->empty()) return nullptr;
      at = &array->front();
    } else {
      const json::object* object = at->if_object();
      if (!object) return nullptr;
      at = object->if_contains(key);
      if (!at) return nullptr;
    }
  }
  return at;
}

}  // namespace

std::string model_path(std::string_view model) {
  std::string out = "/v2/models/";
  for (unsigned char c : model) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string_view output_name(Contract contract) { return contract == Contract::nemo ? "sentences" : "output"; }

std::string_view to_string(Contract contract) {
  return contract == Contract::nemo ? "NeMo GPT (prompts -> sentences)" : "OPT (input, output_length -> output)";
}

std::string infer_body(Contract contract, const std::vector<std::string>& prompts, const GenerationParams& params) {
  const size_t batch = prompts.size();
  json::array inputs;
  json::object body;
  if (contract == Contract::nemo) {
    const bool sampling = params.temperature || params.top_p;
    inputs.push_back(column("prompts", "BYTES", prompts));
    inputs.push_back(column_of("max_length", "INT32", batch, params.max_tokens));
    inputs.push_back(column_of("min_length", "INT32", batch, std::min(params.min_length, params.max_tokens)));
    inputs.push_back(column_of("use_greedy", "BOOL", batch, !sampling));
    inputs.push_back(column_of("add_BOS", "BOOL", batch, true));
    if (params.temperature) inputs.push_back(column_of("temperature", "FP32", batch, *params.temperature));
    if (params.top_p) inputs.push_back(column_of("top_p", "FP32", batch, *params.top_p));
    json::object parameters = sampling_parameters(params, false);
    if (!parameters.empty()) body["parameters"] = std::move(parameters);
  } else {
    inputs.push_back(column("input", "BYTES", prompts));
    inputs.push_back(column_of("output_length", "INT64", batch, static_cast<int64_t>(params.max_tokens)));
    json::object parameters = sampling_parameters(params, true);
    if (!parameters.empty()) body["parameters"] = std::move(parameters);
  }
  body["inputs"] = std::move(inputs);
  body["outputs"] = json::array{json::object{{"name", output_name(contract)}}};
  return json::serialize(body);
}

std::vector<std::string> infer_outputs(std::string_view body, std::string_view name) {
  const json::value root = parse_json(body, "the infer response");
  const json::value* outputs = path(root, {"outputs"});
  if (outputs && outputs->is_array()) {
    for (const auto& output : outputs->get_array()) {
      const json::value* output_name = path(output, {"name"});
      if (!output_name || !output_name->is_string() || output_name->get_string() != name) continue;
      const json::value* data = path(output, {"data"});
      std::vector<std::string> strings;
      bool all_strings = true;
      if (data) flatten_strings(*data, strings, all_strings);
      if (!data || !all_strings) {
        throw Error(ErrorCode::runtime,
                    fmt::format("client: output '{}' of the infer response is not a BYTES tensor of strings", name));
      }
      return strings;
    }
  }
  throw Error(ErrorCode::runtime, fmt::format("client: the infer response has no output '{}': {}", name,
                                              body.substr(0, std::min<size_t>(body.size(), 200))));
}

std::string error_message(std::string_view body) {
  json::error_code ec;
  const json::value value = json::parse(body, ec);
  if (!ec) {
    if (auto message = error_in(value)) return *message;
  }
  std::string_view first = body.substr(0, body.find('\n'));
  if (first.size() > 200) return std::string(first.substr(0, 200)) + "...";
  return first.empty() ? std::string("(empty body)") : std::string(first);
}

std::optional<Contract> contract_from_metadata(std::string_view body) {
  json::error_code ec;
  const json::value value = json::parse(body, ec);
  const json::value* inputs = ec ? nullptr : path(value, {"inputs"});
  if (!inputs || !inputs->is_array()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto& input : inputs->get_array()) {
    if (const json::value* name = path(input, {"name"}); name && name->is_string()) names.emplace_back(name->get_string());
  }
  auto has = [&](std::string_view name) { return std::find(names.begin(), names.end(), name) != names.end(); };
  if (has("prompts")) return Contract::nemo;
  if (has("input") && has("output_length")) return Contract::opt;
  return std::nullopt;
}

std::vector<std::string> model_ids(std::string_view body) {
  json::error_code ec;
  const json::value value = json::parse(body, ec);
  const json::value* data = ec ? nullptr : path(value, {"data"});
  std::vector<std::string> ids;
  if (!data || !data->is_array()) return ids;
  for (const auto& model : data->get_array()) {
    if (const json::value* id = path(model, {"id"}); id && id->is_string()) ids.emplace_back(id->get_string());
  }
  return ids;
}

std::string stream_body(StreamProtocol protocol, const std::string& model, const std::string& prompt,
                        const GenerationParams& params) {
  json::object body;
  if (protocol == StreamProtocol::kserve) {
    // Triton's generate extension:
    // https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_generate.md
    json::object parameters{{"max_tokens", params.max_tokens}};
    if (params.temperature) parameters["temperature"] = *params.temperature;
    if (params.top_p) parameters["top_p"] = *params.top_p;
    if (params.seed) parameters["seed"] = *params.seed;
    body["text_input"] = prompt;
    body["parameters"] = std::move(parameters);
    return json::serialize(body);
  }
  if (!model.empty()) body["model"] = model;
  if (protocol == StreamProtocol::openai) body["prompt"] = prompt;
  else body["messages"] = json::array{json::object{{"role", "user"}, {"content", prompt}}};
  body["max_tokens"] = params.max_tokens;
  // OpenAI's default temperature is 1 (sampling): say greedy, as the client's other forms decode by default.
  if (params.temperature) body["temperature"] = *params.temperature;
  else if (!params.top_p) body["temperature"] = 0;
  if (params.top_p) body["top_p"] = *params.top_p;
  if (params.seed) body["seed"] = *params.seed;
  body["stream"] = true;
  return json::serialize(body);
}

StreamPiece stream_piece(StreamProtocol protocol, std::string_view data) {
  if (protocol != StreamProtocol::kserve && data == "[DONE]") return StreamPiece{"", true};
  const json::value value = parse_json(data, "a streamed event");
  if (auto message = error_in(value))
    throw Error(ErrorCode::runtime, fmt::format("client: the server ended the stream: {}", *message));
  const json::value* text = nullptr;
  switch (protocol) {
    case StreamProtocol::kserve: text = path(value, {"text_output"}); break;
    case StreamProtocol::openai: text = path(value, {"choices", "[0]", "text"}); break;
    case StreamProtocol::openai_chat: text = path(value, {"choices", "[0]", "delta", "content"}); break;
  }
  StreamPiece piece;
  if (text && text->is_string()) piece.text = text->get_string();
  return piece;
}

namespace {

// Decodes one code point at `i`, advancing it; invalid sequences read as U+FFFD, one byte at a time.
char32_t next_code_point(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  int length = 0;
  char32_t cp = 0;
  if (lead < 0x80) {
    ++i;
    return lead;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, cp = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, cp = lead & 0x07;
  } else {
    ++i;
    return 0xFFFD;
  }
  if (i + length > s.size()) {
    ++i;
    return 0xFFFD;
  }
  for (int k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  const bool overlong = (length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000);
  if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
    ++i;
    return 0xFFFD;
  }
  i += length;
  return cp;
}

// Not str.isprintable(): controls, format characters, separators other than ' ', surrogates, private
// use and the non-characters. Python consults the whole Unicode database; these are its common ranges.
bool python_non_printable(char32_t cp) {
  struct Range {
    char32_t first, last;
  };
  static constexpr Range kRanges[] = {
      {0x00, 0x1F},       {0x7F, 0xA0},       {0xAD, 0xAD},       {0x600, 0x605},     {0x61C, 0x61C},
      {0x6DD, 0x6DD},     {0x70F, 0x70F},     {0x8E2, 0x8E2},     {0x1680, 0x1680},   {0x180E, 0x180E},
      {0x2000, 0x200F},   {0x2028, 0x202F},   {0x205F, 0x2064},   {0x2066, 0x206F},   {0x3000, 0x3000},
      {0xD800, 0xF8FF},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0xFFFE, 0xFFFF},   {0x110BD, 0x110BD},
      {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF},
  };
  return std::any_of(std::begin(kRanges), std::end(kRanges), [cp](const Range& r) { return cp >= r.first && cp <= r.last; });
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::string python_repr(std::string_view utf8) {
  // Python's unicode_repr: double quotes only when the text has a single quote and no double quote.
  const bool has_single = utf8.find('\'') != std::string_view::npos;
  const bool has_double = utf8.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < utf8.size();) {
    const char32_t cp = next_code_point(utf8, i);
    if (cp == '\\') out += "\\\\";
    else if (cp == static_cast<char32_t>(quote)) (out += '\\') += quote;
    else if (cp == '\t') out += "\\t";
    else if (cp == '\n') out += "\\n";
    else if (cp == '\r') out += "\\r";
    else if (!python_non_printable(cp)) append_utf8(out, cp);
    else if (cp < 0x100) out += fmt::format("\\x{:02x}", static_cast<uint32_t>(cp));
    else if (cp < 0x10000) out += fmt::format("\\u{:04x}", static_cast<uint32_t>(cp));
    else out += fmt::format("\\U{:08x}", static_cast<uint32_t>(cp));
  }
  out += quote;
  return out;
}

std::string python_list_repr(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += python_repr(items[i]);
  }
  return out + "]";
}

}  // namespace rankserve::client
