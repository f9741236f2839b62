// The official openai npm package against a live rankserve: completion, chat, both streamed, usage,
// and an OpenAI-shaped error. Usage: node openai_check.mjs BASE_URL MODEL. Prints one JSON line of
// what it received; exits 1 with the reason on the first check that fails.
import OpenAI from "openai";
import assert from "node:assert/strict";

const [base, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "unused", maxRetries: 0, timeout: 120000 });
const out = {};

try {
  const models = await client.models.list();
  assert.ok(models.data.some((m) => m.id === model), `model ${model} not in /v1/models`);

  const completion = await client.completions.create({ model, prompt: "1 2 3", max_tokens: 5, temperature: 0 });
  assert.equal(completion.object, "text_completion");
  assert.equal(completion.choices.length, 1);
  assert.ok(["stop", "length"].includes(completion.choices[0].finish_reason));
  assert.ok(completion.usage.prompt_tokens > 0 && completion.usage.completion_tokens > 0);
  assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);
  out.completion = completion.choices[0].text;
  out.completion_usage = completion.usage;

  let streamed = "";
  let finish = null;
  let usage = null;
  const stream = await client.completions.create({ model, prompt: "1 2 3", max_tokens: 5, temperature: 0, stream: true,
                                                   stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) {
      streamed += chunk.choices[0].text;
      if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(streamed, out.completion, "a streamed completion differs from the same request unstreamed");
  assert.ok(finish, "no finish_reason in the stream");
  assert.ok(usage && usage.completion_tokens === out.completion_usage.completion_tokens, "include_usage chunk missing or wrong");
  out.streamed = streamed;

  const chat = await client.chat.completions.create({ model, max_tokens: 4, temperature: 0,
                                                      messages: [{ role: "user", content: "Say hello" }] });
  assert.equal(chat.object, "chat.completion");
  assert.equal(chat.choices[0].message.role, "assistant");
  assert.equal(typeof chat.choices[0].message.content, "string");
  out.chat = chat.choices[0].message.content;

  let chatStreamed = "";
  const chatStream = await client.chat.completions.create({ model, max_tokens: 4, temperature: 0, stream: true,
                                                            messages: [{ role: "user", content: "Say hello" }] });
  for await (const chunk of chatStream) chatStreamed += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(chatStreamed, out.chat, "a streamed chat differs from the same request unstreamed");

  try {
    await client.completions.create({ model: "no-such-model", prompt: "x", max_tokens: 1 });
    assert.fail("an unknown model was accepted");
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError && e.status === 404, `unknown model: expected a 404 APIError, got ${e}`);
    out.unknown_model_error = e.message;
  }
  try {
    await client.completions.create({ model, prompt: "x", max_tokens: -3 });
    assert.fail("max_tokens -3 was accepted");
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError && e.status === 400, `bad max_tokens: expected a 400 APIError, got ${e}`);
  }
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(`openai_check: ${e.stack ?? e}`);
  process.exit(1);
}
