#include "runtime/serving/serving_request.h"

namespace rankserve::runtime {

void finish_request(ServingRequest& request, FinishEvent event) {
  if (request.finished.exchange(true)) return;
  event.prompt_tokens = request.num_prompt_tokens;
  event.completion_tokens = request.num_generated;
  if (event.reason != FinishReason::error) event.text = request.text.finish();
  request.sink->on_finish(event);
}

}  // namespace rankserve::runtime
