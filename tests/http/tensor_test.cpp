#include "net/tensor.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "core/error.h"

using namespace rankserve;
using namespace rankserve::net;

TEST_CASE("JSON tensors accept nested data and check the element count against the shape") {
  const InferRequest r = decode_infer_request(
      R"({"id":"7","inputs":[{"name":"a","datatype":"INT64","shape":[2,2],"data":[[1,2],[3,4]]},
                            {"name":"b","datatype":"FP32","shape":[1],"data":[0.5]}]})",
      std::nullopt);
  CHECK(r.id == "7");
  REQUIRE(r.inputs.size() == 2);
  CHECK(r.inputs[0].numbers == std::vector<double>{1, 2, 3, 4});
  CHECK(r.inputs[1].numbers == std::vector<double>{0.5});
  CHECK_THROWS_AS(decode_infer_request(R"({"inputs":[{"name":"a","datatype":"INT32","shape":[3],"data":[1,2]}]})", std::nullopt),
                  Error);
  CHECK_THROWS_AS(
      decode_infer_request(R"({"inputs":[{"name":"a","datatype":"INT32","shape":[1],"data":[3000000000]}]})", std::nullopt),
      Error);
  CHECK_THROWS_AS(decode_infer_request(R"({"inputs":[{"name":"a","datatype":"INT32","shape":[-1],"data":[]}]})", std::nullopt),
                  Error);
}

TEST_CASE("binary tensors round-trip through the codec for every datatype") {
  Tensor bytes{"s", DataType::bytes, {2}, {"", "xyz"}, {}};
  Tensor ints{"i", DataType::int64, {2}, {}, {-5, 1ll << 40}};
  Tensor floats{"f", DataType::fp32, {1}, {}, {1.5}};
  Tensor bools{"b", DataType::boolean, {3}, {}, {1, 0, 1}};
  std::string json = R"({"inputs":[)";
  std::string binary;
  for (const Tensor* t : {&bytes, &ints, &floats, &bools}) {
    const std::string raw = encode_tensor_bytes(*t);
    json += fmt::format(R"({{"name":"{}","datatype":"{}","shape":[{}],"parameters":{{"binary_data_size":{}}}}},)", t->name,
                        to_string(t->datatype), t->shape[0], raw.size());
    binary += raw;
  }
  json.back() = ']';
  json += "}";
  const InferRequest r = decode_infer_request(json + binary, json.size());
  CHECK(r.inputs[0].strings == bytes.strings);
  CHECK(r.inputs[1].numbers == ints.numbers);
  CHECK(r.inputs[2].numbers == floats.numbers);
  CHECK(r.inputs[3].numbers == bools.numbers);
}

TEST_CASE("a binary response puts the JSON header first and the raw outputs after it") {
  const EncodedResponse e = encode_infer_response(
      "GPT", "", {{Tensor{"o", DataType::int32, {2}, {}, {1, 2}}, true}, {Tensor{"j", DataType::bytes, {1}, {"x"}, {}}, false}});
  REQUIRE(e.json_size);
  CHECK(e.body.size() == *e.json_size + 8);
  CHECK(e.body.substr(0, *e.json_size).find(R"("binary_data_size":8)") != std::string::npos);
  CHECK(e.body.substr(0, *e.json_size).find(R"("data":["x"])") != std::string::npos);
}
