#include "net/json_fields.h"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cmath>
#include <limits>

#include "core/utf8.h"
#include "net/http_types.h"

namespace rankserve::net {

namespace json = boost::json;

namespace {

std::string_view kind_of(const json::value& value) {
  switch (value.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64: return "an integer";
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "a value";
}

std::string_view name_or(std::string_view field, std::string_view key) { return field.empty() ? key : field; }

}  // namespace

json::object parse_json_object(std::string_view body) {
  json::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec) throw field_error("body", fmt::format("is not valid JSON ({}); expected a JSON object", ec.message()));
  if (!value.is_object()) throw field_error("body", fmt::format("is {}; expected a JSON object", kind_of(value)));
  return std::move(value.as_object());
}

namespace {

std::string valid_utf8(std::string text) {
  if (!invalid_utf8_offset(text)) return text;
  // The JSON structure is ASCII and U+FFFD replaces only bytes >= 0x80, so the text stays JSON.
  std::string valid;
  append_utf8_lossy(valid, text, true);
  return valid;
}

}  // namespace

std::string serialize_json(const json::value& value) { return valid_utf8(json::serialize(value)); }

std::string serialize_json(const json::object& object) { return valid_utf8(json::serialize(object)); }

const json::value* find_field(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value == nullptr || value->is_null() ? nullptr : value;
}

int64_t as_int(const json::value& value, std::string_view field) {
  if (value.is_int64()) return value.as_int64();
  if (value.is_uint64() && value.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(value.as_uint64());
  if (value.is_double() && std::trunc(value.as_double()) == value.as_double() && std::fabs(value.as_double()) < 9.0e15) {
    return static_cast<int64_t>(value.as_double());
  }
  throw field_error(field, fmt::format("is {}; expected an integer", kind_of(value)));
}

float to_float32(double value, std::string_view field) {
  if (value == 0) return 0.0f;
  // Beyond float32's range the conversion itself is undefined: such a value counts as infinite.
  const bool fits = std::abs(value) <= std::numeric_limits<float>::max();  // false for NaN too
  const float f = fits ? static_cast<float>(value) : std::numeric_limits<float>::infinity();
  if (!std::isnormal(f)) {
    throw field_error(field,
                      fmt::format("is {}, which is {} as float32; expected a float32 between {} and {} in magnitude", value,
                                  std::isnan(value) ? "not a number"
                                  : std::isinf(f)   ? "infinite"
                                  : f == 0          ? "0"
                                                    : "subnormal",
                                  std::numeric_limits<float>::min(), std::numeric_limits<float>::max()));
  }
  return f;
}

double as_number(const json::value& value, std::string_view field) {
  if (value.is_number()) return value.to_number<double>();
  throw field_error(field, fmt::format("is {}; expected a number", kind_of(value)));
}

std::optional<int64_t> read_int(const json::object& object, std::string_view key, std::string_view field) {
  const json::value* value = find_field(object, key);
  if (value == nullptr) return std::nullopt;
  return as_int(*value, name_or(field, key));
}

std::optional<double> read_number(const json::object& object, std::string_view key, std::string_view field) {
  const json::value* value = find_field(object, key);
  if (value == nullptr) return std::nullopt;
  return as_number(*value, name_or(field, key));
}

std::optional<bool> read_bool(const json::object& object, std::string_view key, std::string_view field) {
  const json::value* value = find_field(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_bool()) throw field_error(name_or(field, key), fmt::format("is {}; expected true or false", kind_of(*value)));
  return value->as_bool();
}

std::optional<std::string> read_string(const json::object& object, std::string_view key, std::string_view field) {
  const json::value* value = find_field(object, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) throw field_error(name_or(field, key), fmt::format("is {}; expected a string", kind_of(*value)));
  return std::string(value->as_string());
}

const json::object* read_object(const json::object& object, std::string_view key, std::string_view field) {
  const json::value* value = find_field(object, key);
  if (value == nullptr) return nullptr;
  if (!value->is_object()) throw field_error(name_or(field, key), fmt::format("is {}; expected an object", kind_of(*value)));
  return &value->as_object();
}

std::optional<std::vector<std::string>> read_strings(const json::object& object, std::string_view key, std::string_view field) {
  const json::value* value = find_field(object, key);
  if (value == nullptr) return std::nullopt;
  if (value->is_string()) return std::vector<std::string>{std::string(value->as_string())};
  if (!value->is_array())
    throw field_error(name_or(field, key), fmt::format("is {}; expected a string or an array of strings", kind_of(*value)));
  std::vector<std::string> out;
  for (const json::value& item : value->as_array()) {
    if (!item.is_string())
      throw field_error(name_or(field, key), fmt::format("has an element that is {}; expected strings", kind_of(item)));
    out.emplace_back(item.as_string());
  }
  return out;
}

}  // namespace rankserve::net
