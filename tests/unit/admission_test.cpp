#include "runtime/serving/admission.h"

#include <doctest/doctest.h>

#include <functional>

#include "core/error.h"
#include "core/setting_error.h"
#include "tests/support/serving_fixtures.h"

using namespace rankserve;
using namespace rankserve::runtime;
using rankserve::testing::bytes_tokenizer;
using rankserve::testing::RecordingSink;
using rankserve::testing::serving_request;

namespace {

// The error `fn` throws; fails the test when it throws none.
Error error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no Error thrown");
  return Error(ErrorCode::runtime, "");
}

constexpr AdmissionOptions kOptions{/*max_context=*/16, /*bos_token_id=*/200, /*add_bos_by_default=*/false};

std::shared_ptr<ServingRequest> prepare(const std::string& prompt, GenerationSettings settings = {},
                                        AdmissionOptions options = kOptions) {
  return prepare_request(TextRequest{prompt, std::move(settings)}, std::make_shared<RecordingSink>(), options, bytes_tokenizer(),
                         77);
}

AdmissionQueue serving_queue(int max_queue_size) {
  AdmissionQueue queue(max_queue_size);
  queue.set_serving(true);
  return queue;
}

}  // namespace

TEST_CASE("a prepared request holds the prompt's tokens, with BOS when the request or the family's default asks") {
  CHECK(prepare("ab")->prompt == std::vector<int32_t>{'a', 'b'});
  GenerationSettings bos;
  bos.add_bos = true;
  CHECK(prepare("ab", bos)->prompt == std::vector<int32_t>{200, 'a', 'b'});
  AdmissionOptions opt = kOptions;
  opt.add_bos_by_default = true;
  CHECK(prepare("ab", {}, opt)->prompt == std::vector<int32_t>{200, 'a', 'b'});
  GenerationSettings no_bos;
  no_bos.add_bos = false;
  CHECK(prepare("ab", no_bos, opt)->prompt == std::vector<int32_t>{'a', 'b'});
}

TEST_CASE("a prepared request's max_tokens is clipped to the context and its seed defaults to the given one") {
  GenerationSettings settings;
  settings.max_tokens = 16;
  const auto r = prepare("0123456789", settings);
  CHECK(r->max_tokens == 6);
  CHECK(r->kv_tokens() == 16);
  CHECK(r->sampling.seed == 77);
  CHECK(r->id == 0);
  settings.seed = 5;
  settings.max_tokens = 3;
  CHECK(prepare("0123456789", settings)->sampling.seed == 5);
  CHECK(prepare("0123456789", settings)->max_tokens == 3);
}

TEST_CASE("ignore_eos blocks EOS for every new token (min_tokens = max_tokens)") {
  GenerationSettings settings;
  settings.max_tokens = 4;
  settings.min_tokens = 1;
  settings.ignore_eos = true;
  const auto r = prepare("ab", settings);
  CHECK(r->ignore_eos);
  CHECK(r->sampling.min_tokens == 4);
}

TEST_CASE("an empty prompt, one that fills the context, and max_tokens past the context are bad requests") {
  Error empty = error_of([] { prepare(""); });
  CHECK(empty.code() == ErrorCode::bad_request);
  CHECK(std::string(empty.what()) == "request: the prompt is empty");

  Error full = error_of([] { prepare("0123456789abcdef"); });
  CHECK(full.code() == ErrorCode::bad_request);
  CHECK(std::string(full.what()).find("the prompt has 16 tokens; the model's context is 16 tokens") != std::string::npos);

  GenerationSettings settings;
  settings.max_tokens = 17;
  settings.max_tokens_field = "max_new_tokens";
  Error past = error_of([&] { prepare("ab", settings); });
  CHECK(past.code() == ErrorCode::bad_request);
  CHECK(std::string(past.what()) == "request: max_new_tokens=17 is more than the model's context of 16 tokens");
}

TEST_CASE("the queue refuses requests before the loop serves") {
  AdmissionQueue queue(4);
  Error e = error_of([&] { queue.push(serving_request(1, 2, 2)); });
  CHECK(e.code() == ErrorCode::unavailable);
  CHECK(std::string(e.what()) == "server: the model is not loaded yet");
  CHECK(queue.not_ready_reason() == "loading");
  queue.set_serving(true);
  queue.push(serving_request(1, 2, 2));
  CHECK(queue.size() == 1);
  CHECK(queue.not_ready_reason().empty());
}

TEST_CASE("a full queue answers overloaded naming the queue size setting (the launcher puts --max-queue-size there)") {
  AdmissionQueue queue = serving_queue(2);
  queue.push(serving_request(1, 2, 2));
  queue.push(serving_request(2, 2, 2));
  Error e = error_of([&] { queue.push(serving_request(3, 2, 2)); });
  CHECK(e.code() == ErrorCode::overloaded);
  CHECK(std::string(e.what()) == "server: the queue is full (2 requests wait; the maximum queue size 2); retry later");
  try {
    queue.push(serving_request(4, 2, 2));
    FAIL("a full queue took a request");
  } catch (const SettingError& full) {
    CHECK(full.setting() == Setting::max_queue_size);  // what the launcher maps to --max-queue-size
  }
  CHECK(queue.size() == 2);
  queue.pop_front();
  queue.push(serving_request(3, 2, 2));  // room again
  CHECK(queue.front()->id == 2);
}

TEST_CASE("draining, stopping and a failure refuse new requests as unavailable") {
  AdmissionQueue draining = serving_queue(4);
  draining.drain();
  Error d = error_of([&] { draining.push(serving_request(1, 2, 2)); });
  CHECK(d.code() == ErrorCode::unavailable);
  CHECK(std::string(d.what()) == "server: shutting down; not accepting new requests");
  CHECK(draining.not_ready_reason() == "draining");

  AdmissionQueue stopping = serving_queue(4);
  stopping.stop("--shutdown-timeout=1 s passed");
  CHECK(error_of([&] { stopping.push(serving_request(1, 2, 2)); }).code() == ErrorCode::unavailable);
  CHECK(stopping.not_ready_reason() == "stopping");

  AdmissionQueue failed = serving_queue(4);
  failed.fail("rank 1 (host n2) silent");
  failed.fail("a later reason");  // the first one stays
  Error f = error_of([&] { failed.push(serving_request(1, 2, 2)); });
  CHECK(f.code() == ErrorCode::unavailable);
  CHECK(std::string(f.what()) == "server: cannot serve: rank 1 (host n2) silent");
  CHECK(failed.not_ready_reason() == "rank 1 (host n2) silent");
}

TEST_CASE("a cancelled queued request leaves the queue as cancelled, and the cancel is then forgotten") {
  AdmissionQueue queue = serving_queue(4);
  queue.push(serving_request(1, 2, 2));
  queue.push(serving_request(2, 2, 2));
  queue.cancel(2);
  queue.cancel(99);  // unknown: nothing happens
  const auto ended = queue.take_ended(Clock::now());
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].request->id == 2);
  CHECK(ended[0].event.reason == FinishReason::cancelled);
  REQUIRE(queue.size() == 1);
  CHECK(queue.front()->id == 1);
  queue.clear_cancels();
  CHECK_FALSE(queue.end_reason(*serving_request(2, 2, 2), Clock::now()));
}

TEST_CASE("a request past its deadline ends with timeout, a stopped service's with the stop reason") {
  AdmissionQueue queue = serving_queue(4);
  auto r = serving_request(1, 2, 2);
  const Clock::time_point now = Clock::now();
  r->deadline = now + std::chrono::seconds(1);
  CHECK_FALSE(queue.end_reason(*r, now));
  auto late = queue.end_reason(*r, now + std::chrono::seconds(1));
  REQUIRE(late);
  CHECK(late->reason == FinishReason::error);
  CHECK(late->error_code == ErrorCode::timeout);
  CHECK(late->error_message == "request: the deadline passed before generation finished");
  queue.stop("SIGTERM twice");
  auto stopped = queue.end_reason(*r, now);
  REQUIRE(stopped);
  CHECK(stopped->error_code == ErrorCode::unavailable);
  CHECK(stopped->error_message == "server: stopped before the request finished (SIGTERM twice)");
}

TEST_CASE("shutdown is due at once when stopping, after the last request when draining or failed") {
  AdmissionQueue queue = serving_queue(4);
  CHECK_FALSE(queue.shutdown_due(false));
  queue.push(serving_request(1, 2, 2));
  queue.drain();
  CHECK_FALSE(queue.shutdown_due(false));  // one still queued
  queue.pop_front();
  CHECK_FALSE(queue.shutdown_due(true));  // one still running
  CHECK(queue.shutdown_due(false));

  AdmissionQueue failed = serving_queue(4);
  failed.fail("rank 2 died");
  CHECK_FALSE(failed.shutdown_due(true));
  CHECK(failed.shutdown_due(false));

  AdmissionQueue stopping = serving_queue(4);
  stopping.stop("now");
  CHECK(stopping.shutdown_due(true));
}

TEST_CASE("take_all empties the queue in order") {
  AdmissionQueue queue = serving_queue(4);
  queue.push(serving_request(1, 2, 2));
  queue.push(serving_request(2, 2, 2));
  const auto all = queue.take_all();
  REQUIRE(all.size() == 2);
  CHECK(all[0]->id == 1);
  CHECK(all[1]->id == 2);
  CHECK(queue.empty());
  CHECK(queue.quiet());
}
