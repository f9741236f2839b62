// Delivery: what one token a step chose does to its request — a TokenEvent with the token's own text
// and the streamed text (UTF-8 whole, stop strings applied by TextStream), then the finish at EOS, a
// stop string or max tokens, or the error when sampling failed. Called by the Scheduler on the engine
// thread, outside its mutex (sinks may call cancel()).
#pragma once

#include <cstdint>

#include "runtime/serving/serving_request.h"

namespace rankserve::runtime {

struct Delivered {
  bool generated = false;  // the token counted as generated (EOS included)
  bool finished = false;   // this token finished the request: it leaves its copy
};

// Hands `token` (a token id, kNoToken or kSamplingFailed; runtime/engine.h) with its log-probability
// to `request`'s sink. EOS (`eos_token_id`, unless the request ignores EOS) is a generated token with
// no text; a token's text comes from the request's TextStream (decoded once). Nothing happens for kNoToken or a request that
// already finished. Engine thread only.
Delivered deliver_token(ServingRequest& request, int32_t token, float logprob, int eos_token_id);

}  // namespace rankserve::runtime
