// Load for bench/batching_bench.sh: N concurrent clients, each streaming OpenAI completions back to
// back (ignore_eos, fixed length) for a fixed time. Prints one JSON line: generated tokens/s over all
// clients, and time to first token (p50, p99) in seconds.
//   node batching_load.mjs URL MODEL CLIENTS SECONDS TOKENS
const [url, model, clientsArg, secondsArg, tokensArg] = process.argv.slice(2);
const clients = Number(clientsArg), seconds = Number(secondsArg), tokens = Number(tokensArg);
const deadline = performance.now() + seconds * 1000;
let generated = 0;
const ttfts = [];

async function one(index) {
  const started = performance.now();
  const response = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model, prompt: `Client ${index} says`, max_tokens: tokens, temperature: 0, ignore_eos: true,
                           stream: true }),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  const decoder = new TextDecoder();
  let buffer = "", first = true;
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!frame.startsWith("data: ") || frame === "data: [DONE]") continue;
      const event = JSON.parse(frame.slice(6));
      if (event.choices?.length && event.choices[0].finish_reason === null) {
        if (first) { ttfts.push((performance.now() - started) / 1000); first = false; }
        generated += 1;  // one frame per generated token
      }
    }
  }
}

async function client(index) {
  while (performance.now() < deadline) await one(index);
}

const start = performance.now();
await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
const elapsed = (performance.now() - start) / 1000;
ttfts.sort((a, b) => a - b);
const pick = (q) => ttfts[Math.min(ttfts.length - 1, Math.floor(q * ttfts.length))];
console.log(JSON.stringify({ clients, tokens_per_s: generated / elapsed, ttft_p50_s: pick(0.5), ttft_p99_s: pick(0.99),
                             requests: ttfts.length }));
