// OpenAI-compatible endpoints: GET /v1/models[/{model}], POST /v1/completions and
// /v1/chat/completions (JSON or server-sent events). docs/openai.md says what is supported.
// Routed by router.cpp; errors are thrown and converted there.
#pragma once

#include "net/exchange.h"
#include "net/server_context.h"

namespace rankserve::net {

ServerResponse openai_list_models(const ServerContext& context);
ServerResponse openai_retrieve_model(const ServerContext& context, const RouteParams& params);
Task<void> openai_completions(ServerContext& context, Exchange& exchange);
Task<void> openai_chat_completions(ServerContext& context, Exchange& exchange);

}  // namespace rankserve::net
