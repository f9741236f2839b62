#include "runtime/serving/delivery.h"

#include <optional>

#include "runtime/engine.h"

namespace rankserve::runtime {

Delivered deliver_token(ServingRequest& request, int32_t token, float logprob, int eos_token_id) {
  Delivered delivered;
  if (request.finished) return delivered;
  if (token == kSamplingFailed) {
    FinishEvent failed;
    failed.reason = FinishReason::error;
    failed.error_code = ErrorCode::runtime;
    failed.error_message =
        "sampling: no next token could be drawn for this request (the model's logits are not finite, "
        "or its sampling values leave nothing to draw); the server goes on";
    finish_request(request, failed);
    delivered.finished = true;
    return delivered;
  }
  if (token < 0) return delivered;
  ++request.num_generated;
  delivered.generated = true;
  // EOS counts as a generated token with its log-probability, but carries no text.
  const bool eos = token == eos_token_id && !request.ignore_eos;
  TokenEvent event{token, logprob, "", ""};
  std::optional<FinishReason> end;
  if (eos) {
    end = FinishReason::stop;
  } else {
    TextStream::Piece piece = request.text.push(token);
    event.token = std::move(piece.token);
    event.text = std::move(piece.text);
    if (piece.stopped) end = FinishReason::stop;
  }
  request.sink->on_token(event);
  if (!end && request.num_generated >= request.max_tokens) end = FinishReason::length;
  if (end) {
    FinishEvent finished;
    finished.reason = *end;
    finish_request(request, finished);
    delivered.finished = true;
  }
  return delivered;
}

}  // namespace rankserve::runtime
