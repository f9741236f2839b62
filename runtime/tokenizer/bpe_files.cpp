// The file formats of BpeTokenizer: GPT-2's vocab.json + merges.txt and Hugging Face's tokenizer.json,
// parsed into a BpeModel. Every error names the file and, inside JSON, the key path.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "runtime/tokenizer/bpe_tokenizer.h"
#include "runtime/tokenizer/byte_level.h"

namespace rankserve::runtime {
namespace {

namespace json = boost::json;

[[noreturn]] void fail_load(std::string_view file, const std::string& what) {
  throw Error(ErrorCode::load, fmt::format("tokenizer: {}: {}", file, what));
}

std::string read_file(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) fail_load(path, fmt::format("cannot open: {}", std::strerror(errno)));
  std::string text;
  std::array<char, 1 << 16> buffer;
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) text.append(buffer.data(), n);
  if (std::ferror(file.get())) fail_load(path, fmt::format("cannot read: {}", std::strerror(errno)));
  return text;
}

// A short rendering of a JSON value for messages: its text, cut at 40 characters.
std::string shown(const json::value& value) {
  std::string text = json::serialize(value);
  return text.size() > 40 ? text.substr(0, 37) + "..." : text;
}

json::value parse_json_text(const std::string& text, std::string_view path, std::string_view expected) {
  json::parser parser;
  boost::system::error_code ec;
  std::size_t consumed = parser.write(text.data(), text.size(), ec);
  if (ec) {
    std::size_t line = 1 + std::count(text.begin(), text.begin() + consumed, '\n');
    std::size_t line_start = text.rfind('\n', consumed == 0 ? 0 : consumed - 1);
    std::size_t column = consumed - (line_start == std::string::npos || consumed == 0 ? 0 : line_start + 1) + 1;
    fail_load(path, fmt::format("malformed JSON at line {}, column {} ({}); expected {}", line, column, ec.message(), expected));
  }
  return parser.release();
}

json::value parse_json(const std::string& path, std::string_view expected) {
  return parse_json_text(read_file(path), path, expected);
}

const json::object& as_object(const json::value& value, std::string_view file, std::string_view key) {
  if (!value.is_object()) fail_load(file, fmt::format("{} is {}; expected an object", key, shown(value)));
  return value.get_object();
}

// A token -> id object (vocab.json, model.vocab).
std::unordered_map<std::string, int32_t> vocab_from_json(const json::value& value, std::string_view file, std::string_view key) {
  std::unordered_map<std::string, int32_t> vocab;
  for (const auto& [token, id] : as_object(value, file, key)) {
    if (!id.is_int64() || id.get_int64() < 0 || id.get_int64() > INT32_MAX) {
      fail_load(file,
                fmt::format("{} maps {:?} to {}; expected a token id, an integer >= 0", key, std::string_view(token), shown(id)));
    }
    vocab.emplace(token, static_cast<int32_t>(id.get_int64()));
  }
  return vocab;
}

// merges.txt: an optional "#version" line, then one "left right" pair per line, highest priority first.
std::vector<std::pair<std::string, std::string>> merges_from_text(const std::string& text, std::string_view path) {
  std::vector<std::pair<std::string, std::string>> merges;
  std::size_t line_number = 0;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.starts_with("#version")) continue;
    std::size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      fail_load(path, fmt::format("line {} is {:?}; expected two tokens separated by one space", line_number, line));
    }
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return merges;
}

// model.merges: "left right" strings (tokenizers < 0.20) or ["left", "right"] pairs (later versions).
std::vector<std::pair<std::string, std::string>> merges_from_json(const json::value& value, std::string_view file) {
  if (!value.is_array()) fail_load(file, fmt::format("model.merges is {}; expected an array", shown(value)));
  std::vector<std::pair<std::string, std::string>> merges;
  const json::array& array = value.get_array();
  for (std::size_t i = 0; i < array.size(); ++i) {
    const json::value& merge = array[i];
    if (const json::string* text = merge.if_string()) {
      std::string_view line(*text);
      std::size_t space = line.find(' ');
      if (space != 0 && space != std::string_view::npos && space + 1 < line.size() &&
          line.find(' ', space + 1) == std::string_view::npos) {
        merges.emplace_back(line.substr(0, space), line.substr(space + 1));
        continue;
      }
    } else if (const json::array* pair = merge.if_array();
               pair && pair->size() == 2 && (*pair)[0].is_string() && (*pair)[1].is_string()) {
      merges.emplace_back((*pair)[0].get_string(), (*pair)[1].get_string());
      continue;
    }
    fail_load(file, fmt::format("model.merges[{}] is {}; expected \"left right\" or [\"left\", \"right\"]", i, shown(merge)));
  }
  return merges;
}

std::vector<AddedToken> added_tokens_from_json(const json::object& root, std::string_view file) {
  std::vector<AddedToken> tokens;
  const json::value* list = root.if_contains("added_tokens");
  if (list == nullptr || list->is_null()) return tokens;
  if (!list->is_array()) fail_load(file, fmt::format("added_tokens is {}; expected an array", shown(*list)));
  for (std::size_t i = 0; i < list->get_array().size(); ++i) {
    std::string key = fmt::format("added_tokens[{}]", i);
    const json::object& entry = as_object(list->get_array()[i], file, key);
    const json::value* id = entry.if_contains("id");
    const json::value* content = entry.if_contains("content");
    if (id == nullptr || !id->is_int64() || id->get_int64() < 0 || id->get_int64() > INT32_MAX || content == nullptr ||
        !content->is_string() || content->get_string().empty()) {
      fail_load(file, fmt::format("{} is {}; expected an object with an integer \"id\" >= 0 and a non-empty "
                                  "\"content\" string",
                                  key, shown(list->get_array()[i])));
    }
    auto flag = [&](const char* name) {
      const json::value* value = entry.if_contains(name);
      return value != nullptr && value->is_bool() && value->get_bool();
    };
    tokens.push_back(
        AddedToken{std::string(content->get_string()), static_cast<int32_t>(id->get_int64()), flag("lstrip"), flag("rstrip")});
  }
  return tokens;
}

bool is_true(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && value->is_bool() && value->get_bool();
}

// Rejects the tokenizer.json features encode() does not implement, rather than silently giving ids
// the model was not trained with.
void check_supported(const json::object& root, const json::object& model, std::string_view file) {
  const json::value* type = model.if_contains("type");
  if (type != nullptr && !(type->is_string() && type->get_string() == "BPE")) {
    fail_load(file,
              fmt::format("model.type is {}; expected \"BPE\" (only byte-level BPE tokenizers are supported)", shown(*type)));
  }
  const json::value* normalizer = root.if_contains("normalizer");
  if (normalizer != nullptr && !normalizer->is_null()) {
    fail_load(file, fmt::format("normalizer is {}; expected null (no normalizer is implemented)", shown(*normalizer)));
  }
  const json::value* pre = root.if_contains("pre_tokenizer");
  const json::object* pre_object = pre != nullptr ? pre->if_object() : nullptr;
  const json::value* pre_type = pre_object != nullptr ? pre_object->if_contains("type") : nullptr;
  if (pre_type == nullptr || !pre_type->is_string() || pre_type->get_string() != "ByteLevel") {
    fail_load(file, fmt::format("pre_tokenizer is {}; expected {{\"type\": \"ByteLevel\", ...}} (GPT-2's)",
                                pre != nullptr ? shown(*pre) : "missing"));
  }
  const json::value* use_regex = pre_object->if_contains("use_regex");
  if (is_true(*pre_object, "add_prefix_space") ||
      (use_regex != nullptr && !use_regex->is_null() && !is_true(*pre_object, "use_regex"))) {
    fail_load(file,
              "pre_tokenizer has add_prefix_space true or use_regex false; expected GPT-2's "
              "add_prefix_space false, use_regex true");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json::value* value = model.if_contains(key);
    if (value != nullptr && !value->is_null() && !(value->is_string() && value->get_string().empty())) {
      fail_load(file, fmt::format("model.{} is {}; expected null or \"\"", key, shown(*value)));
    }
  }
  for (const char* key : {"byte_fallback", "ignore_merges"}) {
    if (is_true(model, key)) fail_load(file, fmt::format("model.{} is true; expected false", key));
  }
  const json::value* dropout = model.if_contains("dropout");
  if (dropout != nullptr && !dropout->is_null() && !(dropout->is_number() && dropout->to_number<double>() == 0.0)) {
    fail_load(file, fmt::format("model.dropout is {}; expected null (dropout is for training)", shown(*dropout)));
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt,
                                      std::span<const std::string> special_tokens) {
  return from_texts({read_file(vocab_json), vocab_json}, {read_file(merges_txt), merges_txt}, special_tokens);
}

BpeTokenizer BpeTokenizer::from_texts(const NamedText& vocab_json, const NamedText& merges_txt,
                                      std::span<const std::string> special_tokens) {
  BpeModel model;
  model.vocab_origin = vocab_json.origin;
  model.merges_origin = merges_txt.origin;
  model.vocab = vocab_from_json(parse_json_text(vocab_json.text, vocab_json.origin, "an object of token -> id"),
                                vocab_json.origin, "the top level");
  model.merges = merges_from_text(merges_txt.text, merges_txt.origin);
  for (const std::string& special : special_tokens) {
    std::string spelling;
    byte_level::append_spelling(spelling, special);
    auto it = model.vocab.find(spelling);
    if (it == model.vocab.end()) {
      fail_load(vocab_json.origin,
                fmt::format("special token {:?} is not in the vocabulary; expected one of its tokens", special));
    }
    model.added_tokens.push_back(AddedToken{special, it->second});
  }
  return from_model(model);
}

BpeTokenizer BpeTokenizer::from_tokenizer_json(const std::string& path) {
  json::value root_value = parse_json(path, "a Hugging Face tokenizer.json");
  const json::object& root = as_object(root_value, path, "the top level");
  const json::value* model_value = root.if_contains("model");
  if (model_value == nullptr) fail_load(path, "has no \"model\"; expected a Hugging Face tokenizer.json");
  const json::object& model_object = as_object(*model_value, path, "model");
  check_supported(root, model_object, path);
  const json::value* vocab = model_object.if_contains("vocab");
  const json::value* merges = model_object.if_contains("merges");
  if (vocab == nullptr || merges == nullptr) fail_load(path, "model has no \"vocab\" or no \"merges\"; expected both");
  BpeModel model;
  model.vocab_origin = path;
  model.merges_origin = path;
  model.vocab = vocab_from_json(*vocab, path, "model.vocab");
  model.merges = merges_from_json(*merges, path);
  model.added_tokens = added_tokens_from_json(root, path);
  return from_model(model);
}

}  // namespace rankserve::runtime
