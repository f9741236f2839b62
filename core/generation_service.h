// The serving vocabulary shared by the HTTP front end (net/) and the engine side (runtime/serving):
// a text generation request, the events streamed back for it, and the abstract service that global
// rank 0 serves. Torch-free and Beast-free; the http tier tests implement it with a scripted fake.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace rankserve {

using Clock = std::chrono::steady_clock;

// How to generate. Protocol handlers fill it from KServe inputs or OpenAI fields and validate ranges
// (they name the field); the service checks what needs the model (context length).
struct GenerationSettings {
  int max_tokens = 16;                          // new tokens at most, >= 1; more than the model's context is refused,
                                                // prompt + max_tokens past the context is clipped
  std::string max_tokens_field = "max_tokens";  // the protocol's name for it, for error messages
  int min_tokens = 0;                           // EOS is not sampled before this many new tokens
  bool greedy = true;                           // argmax; temperature/top_k/top_p are ignored
  float temperature = 1.0f;                     // > 0
  int top_k = 0;                                // 0: no limit
  float top_p = 1.0f;                           // in (0, 1]
  float repetition_penalty = 1.0f;              // > 0; 1: off
  std::optional<uint64_t> seed;                 // none: the service picks one per request
  // End strings: generation ends once the generated text contains one. `keep_stop` true leaves the
  // matched string in the text (NeMo's end_strings), false cuts the text before it (OpenAI's stop).
  std::vector<std::string> stop;
  bool keep_stop = false;
  std::optional<bool> add_bos;  // prepend the model's BOS token; none: the family's default
  bool ignore_eos = false;      // keep generating past EOS (benchmarks)
};

struct TextRequest {
  std::string prompt;  // UTF-8 text (invalid UTF-8 is encoded byte-wise, never rejected)
  GenerationSettings settings;
  Clock::time_point deadline = Clock::time_point::max();  // the request fails with timeout after it
};

// One generated token. `text` is the piece of the continuation this token completes: whole UTF-8
// characters only (possibly empty while a character is incomplete), with end strings applied (text
// held back while it may still become an end string, cut at a matched one when keep_stop is false).
struct TokenEvent {
  int32_t id = 0;
  float logprob = 0;  // natural log-probability of `id` under the sampling distribution's logits
  std::string token;  // this token's own text, as the tokenizer spells it (may be a partial character)
  std::string text;   // see above
};

enum class FinishReason {
  length,     // max_tokens reached or the model's context is full
  stop,       // EOS or an end string
  cancelled,  // cancel() was called (the client went away)
  error,      // see FinishEvent::error_message; the request failed
};

std::string_view to_string(FinishReason reason) noexcept;  // "length", "stop", "cancelled", "error"

struct FinishEvent {
  FinishReason reason = FinishReason::length;
  int prompt_tokens = 0;      // including an added BOS
  int completion_tokens = 0;  // generated tokens, EOS included when sampled
  std::string text;           // any text held back until now (an incomplete character, an end-string prefix)
  std::string error_message;  // reason == error: "<area>: <what happened>" (a rank that failed, a timeout)
  // reason == error: what the front end answers (unavailable: a rank failed or the server stops;
  // timeout: the deadline passed; runtime: this request could not go on, the server does).
  ErrorCode error_code = ErrorCode::unavailable;
};

// Receives one request's events. Called on the engine thread, in order: on_token zero or more times,
// then on_finish exactly once. Implementations must not block (hand the event to another thread).
class GenerationSink {
 public:
  virtual ~GenerationSink() = default;
  virtual void on_token(const TokenEvent& event) = 0;
  virtual void on_finish(const FinishEvent& event) = 0;
};

using RequestId = uint64_t;

// What the server says about the model it serves.
struct ModelInfo {
  std::string name;     // served name ("GPT", "OPT", or --model-name)
  std::string family;   // "gpt2", "opt", "nemo_gpt": selects the KServe contract (OPT vs GPT)
  std::string source;   // the checkpoint path or random/<size>
  int max_context = 0;  // tokens per sequence, prompt included
  int vocab_size = 0;
  int max_batch_size = 0;  // sequences running at once per model copy
  int eos_token_id = -1;
};

// A snapshot for health and metrics. Cheap; any thread.
struct ServiceStatus {
  bool ready = false;            // every rank loaded its shard, heartbeats are fresh, engine progressing, not draining
  std::string not_ready_reason;  // when !ready: "loading", "draining", "rank 3 (host n2) silent for 6.1 s", ...
  bool draining = false;
  int queue_size = 0;  // requests accepted and not yet running
  int max_queue_size = 0;
  int running = 0;                      // sequences in the running batches, all copies
  double kv_cache_usage = 0;            // fraction of the KV-cache token budget in use, 0..1
  std::vector<double> heartbeat_age_s;  // per global rank, seconds since its last heartbeat
  uint64_t prompt_tokens_total = 0;
  uint64_t generated_tokens_total = 0;
  uint64_t steps_total = 0;  // engine steps run since start
};

// The model service on global rank 0. Every method: any thread, concurrently.
class GenerationService {
 public:
  virtual ~GenerationService() = default;

  virtual const ModelInfo& model() const = 0;
  virtual ServiceStatus status() const = 0;

  // Tokenizes and queues the request; its events go to `sink` (kept alive until on_finish returns).
  // Throws Error(bad_request) for a prompt that leaves no room to generate in the model's context
  // (the message says both lengths), Error(overloaded) when --max-queue-size requests already wait,
  // Error(unavailable) when draining, not ready, or stopped. Nothing reaches the engine before these checks.
  virtual RequestId submit(TextRequest request, std::shared_ptr<GenerationSink> sink) = 0;

  // The request leaves its batch before the next step and its sink gets on_finish(cancelled).
  // A no-op for a finished or unknown id.
  virtual void cancel(RequestId id) = 0;

  // Token count of `text` as the model sees it (no BOS), for usage and context checks.
  virtual int count_tokens(std::string_view text) const = 0;
};

}  // namespace rankserve
