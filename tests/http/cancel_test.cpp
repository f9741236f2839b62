#include "net/generation.h"

#include <doctest/doctest.h>

#include "tests/http/test_client.h"

using namespace rankserve;
using namespace rankserve::testing;

namespace {

std::string post_raw(const std::string& target, const std::string& body) {
  return "POST " + target +
         " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body;
}

}  // namespace

TEST_CASE("a client that disconnects while its request generates gets its request cancelled") {
  TestServer t;
  FakeScript s;
  s.hang = true;
  t.service.set_script(s);
  for (const std::string target : {"/v1/completions", "/v2/models/GPT/generate"}) {
    const size_t before = t.service.num_cancelled();
    RawConnection c(t.server.http_port());
    c.write(post_raw(target, R"({"prompt":"a","text_input":"a","max_tokens":5})"));
    REQUIRE(t.service.wait_for_submits(before + 1, 5s));
    c.close();
    CHECK_MESSAGE(t.service.wait_for_cancels(before + 1, 5s), target);
  }
}

TEST_CASE("a client that disconnects from a batched infer gets every sample cancelled") {
  TestServer t;
  FakeScript s;
  s.hang = true;
  t.service.set_script(s);
  RawConnection c(t.server.http_port());
  c.write(post_raw("/v2/models/GPT/infer",
                   R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[3,1],"data":["a","b","c"]}]})"));
  REQUIRE(t.service.wait_for_submits(3, 5s));
  c.close();
  CHECK(t.service.wait_for_cancels(3, 5s));
}

TEST_CASE("a client that disconnects from a stream gets its request cancelled") {
  TestServer t;
  RawConnection c(t.server.http_port());
  c.write(post_raw("/v1/chat/completions", R"({"messages":[{"role":"user","content":"x"}],"max_tokens":100000,"stream":true})"));
  const std::string head = c.read_until("w1", 5s);
  REQUIRE(head.find("w1") != std::string::npos);
  c.close();
  CHECK(t.service.wait_for_cancels(1, 5s));
}

TEST_CASE("a request that outlives its deadline fails with 504") {
  TestServer t;
  FakeScript s;
  s.hang = true;
  t.service.set_script(s);
  const Reply r =
      t.post("/v2/models/GPT/infer",
             R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["a"]}],"parameters":{"timeout":100000}})");
  CHECK(r.status == 504);
}
