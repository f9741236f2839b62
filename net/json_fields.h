// Typed reads of JSON request fields that fail with a 400 naming the field (OpenAI's `param`), and
// the serialization of response bodies. Used by the KServe and OpenAI handlers and the error wrapper.
// Absent and null fields read as nullopt.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rankserve::net {

// Parses a request body that must be a JSON object; throws field_error("body", ...) otherwise.
boost::json::object parse_json_object(std::string_view body);

// The value at `key`, or nullptr when absent or null.
const boost::json::value* find_field(const boost::json::object& object, std::string_view key);

// `field` is the name the error uses (e.g. "stream_options.include_usage"); defaults to `key`.
std::optional<int64_t> read_int(const boost::json::object& object, std::string_view key, std::string_view field = {});
std::optional<double> read_number(const boost::json::object& object, std::string_view key, std::string_view field = {});
std::optional<bool> read_bool(const boost::json::object& object, std::string_view key, std::string_view field = {});
std::optional<std::string> read_string(const boost::json::object& object, std::string_view key, std::string_view field = {});
const boost::json::object* read_object(const boost::json::object& object, std::string_view key, std::string_view field = {});
// A string or an array of strings (OpenAI's `stop`).
std::optional<std::vector<std::string>> read_strings(const boost::json::object& object, std::string_view key,
                                                     std::string_view field = {});

// A sampling value as the sampler uses it (float32). Throws field_error naming `field` when it is NaN,
// or when float32 would change its meaning: 1e39 becomes infinity, 1e-40 and 5e-324 become subnormal
// or 0 (0 itself is kept). Range checks stay with the caller.
float to_float32(double value, std::string_view field);

// `value` as JSON text that is always well-formed UTF-8. Boost.JSON writes a string's bytes as they
// are; bytes that are not UTF-8 (a partial character of a token, the request path or a header quoted
// in an error) become U+FFFD here, so a response body is always valid JSON. Every body goes through this.
std::string serialize_json(const boost::json::value& value);
std::string serialize_json(const boost::json::object& object);  // without a copy into a value

// The same conversions for a value already found.
int64_t as_int(const boost::json::value& value, std::string_view field);
double as_number(const boost::json::value& value, std::string_view field);

}  // namespace rankserve::net
