// Request bodies with Content-Encoding gzip and deflate (tritonclient's request_compression_algorithm):
// inflated before the KServe decoders, limited by their inflated size, refused when corrupt or unknown.
#include "net/content_encoding.h"

#include <doctest/doctest.h>
#include <malloc.h>
#include <zlib.h>

#include <boost/json.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

#include "net/tensor.h"
#include "tests/http/test_client.h"

namespace json = boost::json;
using namespace rankserve;
using namespace rankserve::testing;

// Live and peak heap bytes allocated through operator new on a thread while it measures: a check that
// inflating a bomb never holds more than the limit, without timing.
namespace {
thread_local bool g_measuring = false;
thread_local std::size_t g_live = 0;
thread_local std::size_t g_peak = 0;
}  // namespace

void* operator new(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  if (g_measuring) {
    g_live += malloc_usable_size(p);
    g_peak = std::max(g_peak, g_live);
  }
  return p;
}
void operator delete(void* p) noexcept {
  if (p != nullptr && g_measuring) g_live -= std::min(g_live, malloc_usable_size(p));
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

namespace {

// zlib's own compressor, not rankserve's: windowBits 15 + 16 writes gzip, 15 zlib (HTTP's
// "deflate"), -15 raw deflate.
std::string compress(const std::string& data, int window_bits) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, window_bits, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}
std::string gzip(const std::string& data) { return compress(data, 15 + 16); }
std::string zlib_deflate(const std::string& data) { return compress(data, 15); }

// `num_bytes` zeros, gzipped in pieces (never held whole): about 1 KiB per MiB.
std::string gzip_zeros(std::size_t num_bytes) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) == Z_OK);
  const std::string zeros(1 << 20, '\0');
  std::string out;
  char buffer[1 << 16];
  for (std::size_t left = num_bytes;;) {
    const std::size_t n = std::min(left, zeros.size());
    left -= n;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
    z.avail_in = static_cast<uInt>(n);
    const int flush = left == 0 ? Z_FINISH : Z_NO_FLUSH;
    int rc = Z_OK;
    do {
      z.next_out = reinterpret_cast<Bytef*>(buffer);
      z.avail_out = sizeof(buffer);
      rc = deflate(&z, flush);
      out.append(buffer, sizeof(buffer) - z.avail_out);
    } while (z.avail_out == 0);
    if (rc == Z_STREAM_END) break;
  }
  deflateEnd(&z);
  return out;
}

const std::string kInfer = R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[2,1],"data":["Thank you for","1 2 3"]}]})";

std::string error_of(const Reply& r) { return std::string(r.json().at("error").as_string()); }

}  // namespace

TEST_CASE("gzip and deflate infer bodies are answered as the same body uncompressed") {
  TestServer t;
  const Reply plain = t.post("/v2/models/GPT/infer", kInfer);
  REQUIRE(plain.status == 200);
  for (const auto& sent : std::vector<std::pair<std::string, std::string>>{{"gzip", gzip(kInfer)},
                                                                           {"GZIP", gzip(kInfer)},
                                                                           {"deflate", zlib_deflate(kInfer)},
                                                                           {"deflate", compress(kInfer, -15)}}) {
    const std::string& coding = sent.first;  // not a structured binding: clang 14 cannot capture one
    const std::string& body = sent.second;
    CAPTURE(coding);
    const Reply r = t.post("/v2/models/GPT/infer", body, {{"Content-Encoding", coding}});
    CHECK(r.status == 200);
    CHECK(r.body == plain.body);
  }
  CHECK(t.service.submitted().size() == 10);
  CHECK(t.service.submitted().back().prompt == "1 2 3");
}

TEST_CASE("a gzipped binary infer body applies Inference-Header-Content-Length to the inflated bytes") {
  TestServer t;
  net::Tensor prompts;
  prompts.datatype = net::DataType::bytes;
  prompts.strings = {"binary prompt"};
  const std::string raw = net::encode_tensor_bytes(prompts);
  const std::string header =
      json::serialize(json::object{{"inputs", json::array{json::object{{"name", "prompts"},
                                                                       {"datatype", "BYTES"},
                                                                       {"shape", {1, 1}},
                                                                       {"parameters", {{"binary_data_size", raw.size()}}}}}}});
  const Reply r = t.post("/v2/models/GPT/infer", gzip(header + raw),
                         {{"Inference-Header-Content-Length", std::to_string(header.size())},
                          {"Content-Type", "application/octet-stream"},
                          {"Content-Encoding", "gzip"}});
  CHECK_MESSAGE(r.status == 200, r.body);
  REQUIRE(t.service.submitted().size() == 1);
  CHECK(t.service.submitted()[0].prompt == "binary prompt");
}

TEST_CASE("gzip members sent one after another inflate to one body") {
  std::string body = gzip(kInfer.substr(0, 10)) + gzip(kInfer.substr(10));
  CHECK_FALSE(net::decode_content_encoding("gzip", body, 1 << 20));
  CHECK(body == kInfer);
}

TEST_CASE("a body that inflates past the body limit gets 413 without holding more than the limit") {
  constexpr std::size_t kLimit = 1 << 20;
  const std::string bomb = gzip_zeros(std::size_t{256} << 20);  // 256 MiB of zeros in about 256 KiB
  REQUIRE(bomb.size() < kLimit);

  std::string body = bomb;
  g_live = g_peak = 0;
  g_measuring = true;
  const auto failed = net::decode_content_encoding("gzip", body, kLimit);
  g_measuring = false;
  REQUIRE(failed);
  CHECK(failed->status == 413);
  CHECK(failed->message.find("inflates") != std::string::npos);
  CHECK_MESSAGE(g_peak <= kLimit, "peak heap while inflating: " << g_peak);

  // Exactly the limit is accepted, one byte more is not; the body is then exactly its inflated size.
  std::string at_limit = gzip(std::string(kLimit, 'a'));
  g_live = g_peak = 0;
  g_measuring = true;
  CHECK_FALSE(net::decode_content_encoding("gzip", at_limit, kLimit));
  g_measuring = false;
  CHECK(at_limit.size() == kLimit);
  CHECK_MESSAGE(g_peak <= kLimit + 4096, "peak heap while inflating: " << g_peak);
  std::string over = gzip(std::string(kLimit + 1, 'a'));
  CHECK(net::decode_content_encoding("gzip", over, kLimit)->status == 413);

  net::ServerOptions options = TestServer::default_options();
  options.max_body_bytes = kLimit;
  TestServer t(gpt_model_info(), options);
  const Reply r = t.post("/v2/models/GPT/infer", bomb, {{"Content-Encoding", "gzip"}});
  CHECK(r.status == 413);
  CHECK(error_of(r).find("Content-Encoding gzip") != std::string::npos);
  CHECK(t.service.submitted().empty());
  CHECK(t.get("/v2/health/ready").status == 200);
}

TEST_CASE("a corrupt or truncated compressed body gets 400 naming Content-Encoding") {
  TestServer t;
  const std::string good = gzip(kInfer);
  std::string flipped = good;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x55);
  std::string bad_crc = good;
  bad_crc[bad_crc.size() - 6] = static_cast<char>(bad_crc[bad_crc.size() - 6] ^ 0x01);  // the CRC32 trailer
  for (const auto& sent : std::vector<std::pair<std::string, std::string>>{{"gzip", kInfer},
                                                                           {"gzip", good.substr(0, good.size() / 2)},
                                                                           {"gzip", flipped},
                                                                           {"gzip", bad_crc},
                                                                           {"deflate", kInfer},
                                                                           {"deflate", zlib_deflate(kInfer) + "junk"}}) {
    const std::string& coding = sent.first;  // not a structured binding: clang 14 cannot capture one
    const std::string& body = sent.second;
    CAPTURE(coding);
    CAPTURE(body.size());
    const Reply r = t.post("/v2/models/GPT/infer", body, {{"Content-Encoding", coding}});
    CHECK(r.status == 400);
    CHECK(error_of(r).find("Content-Encoding " + coding) != std::string::npos);
  }
  CHECK(t.service.submitted().empty());
}

TEST_CASE("an unknown Content-Encoding gets 415 and identity is the body as sent") {
  TestServer t;
  for (const std::string coding : {"br", "zstd", "gzip, deflate", "compress"}) {
    const Reply r = t.post("/v2/models/GPT/infer", kInfer, {{"Content-Encoding", coding}});
    CHECK(r.status == 415);
    CHECK(error_of(r).find("Content-Encoding '" + coding + "' is not supported") != std::string::npos);
  }
  CHECK(t.post("/v2/models/GPT/infer", kInfer, {{"Content-Encoding", "identity"}}).status == 200);
}

TEST_CASE("the OpenAI and generate surfaces take gzip bodies too") {
  TestServer t;
  CHECK(t.post("/v1/completions", gzip(R"({"prompt":"a","max_tokens":2})"), {{"Content-Encoding", "gzip"}}).status == 200);
  const Reply g =
      t.post("/v2/models/GPT/generate", zlib_deflate(R"({"text_input":"a","max_tokens":2})"), {{"Content-Encoding", "deflate"}});
  CHECK(g.status == 200);
  CHECK(g.json().at("text_output").as_string() == FakeService::continuation(2));
}

TEST_CASE("a client that accepts gzip gets large responses gzipped and small ones as they are") {
  TestServer t;
  const std::string big = R"({"inputs":[{"name":"prompts","datatype":"BYTES","shape":[1,1],"data":["x"]},
                                       {"name":"max_length","datatype":"INT32","shape":[1,1],"data":[200]}]})";
  const Reply plain = t.post("/v2/models/GPT/infer", big);
  REQUIRE(plain.status == 200);
  REQUIRE(plain.body.size() >= net::kMinCompressedResponseBytes);
  CHECK(plain.header("Content-Encoding").empty());
  for (const std::string accept : {"gzip", "deflate, gzip;q=0.5", "*", "br;q=1.0, GZIP"}) {
    CAPTURE(accept);
    const Reply r = t.post("/v2/models/GPT/infer", big, {{"Accept-Encoding", accept}});
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Encoding") == "gzip");
    std::string body = r.body;
    CHECK(body.size() < plain.body.size());
    CHECK_FALSE(net::decode_content_encoding("gzip", body, 1 << 20));
    CHECK(body == plain.body);
  }
  for (const std::string accept : {"gzip;q=0", "identity", "br", "*, gzip;q=0", "deflate"}) {
    CAPTURE(accept);
    const Reply r = t.post("/v2/models/GPT/infer", big, {{"Accept-Encoding", accept}});
    CHECK(r.header("Content-Encoding").empty());
    CHECK(r.body == plain.body);
  }
  const Reply small = t.get("/v2/health/ready", {{"Accept-Encoding", "gzip"}});
  CHECK(small.header("Content-Encoding").empty());
  CHECK(small.json().at("ready").as_bool());
}
