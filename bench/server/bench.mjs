// bench.mjs - load generator for `quarrel serve`: C concurrent clients, each sending R
// streaming /v1/completions requests one after another (temperature 0, max_tokens N, EOS
// banned through logit_bias so every request generates N tokens). Prints aggregate generation
// tokens/s over the wall time and time-to-first-token percentiles.
//   node bench.mjs --url http://127.0.0.1:8080 --clients 8 --requests 4 --tokens 64 [--eos ID]
const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) =>
  (v.startsWith('--') ? a.concat([[v.slice(2), all[i + 1]]]) : a), []));
const url = args.url ?? 'http://127.0.0.1:8080';
const clients = Number(args.clients ?? 1), requests = Number(args.requests ?? 4);
const tokens = Number(args.tokens ?? 64);
const eos = args.eos !== undefined ? Number(args.eos) : null;
const key = args.key ?? null;
const prompts = ['Once upon a time', 'The quick brown fox', 'In a distant galaxy', 'def main():',
  'The capital of France is', 'It was a dark and stormy night', 'Hello, my name is', 'Lorem ipsum dolor'];

async function one(prompt) {
  const t0 = performance.now();
  const body = { prompt, max_tokens: tokens, temperature: 0, stream: true,
    stream_options: { include_usage: true } };
  if (eos !== null) body.logit_bias = { [eos]: -100 };
  const headers = { 'Content-Type': 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const r = await fetch(url + '/v1/completions', { method: 'POST', headers, body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`status ${r.status}: ${await r.text()}`);
  let ttft = null, n = 0, buf = '';
  const dec = new TextDecoder();
  for await (const chunk of r.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      if (j.error) throw new Error(j.error.message);
      if (ttft === null && j.choices.length && j.choices[0].text) ttft = performance.now() - t0;
      if (j.usage) n = j.usage.completion_tokens;
    }
  }
  return { ttft, n, ms: performance.now() - t0 };
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const t0 = performance.now();
const results = [];
await Promise.all(Array.from({ length: clients }, async (_, c) => {
  for (let k = 0; k < requests; k++) results.push(await one(prompts[(c + k) % prompts.length] + ` (${c}.${k})`));
}));
const wall = (performance.now() - t0) / 1000;
const gen = results.reduce((a, r) => a + r.n, 0);
const ttfts = results.map((r) => r.ttft).filter((x) => x !== null);
console.log(JSON.stringify({ clients, requests: results.length, tokens_per_request: tokens, generated: gen,
  wall_s: +wall.toFixed(3), aggregate_tok_s: +(gen / wall).toFixed(1),
  ttft_ms: { p50: +pct(ttfts, 0.5).toFixed(1), p90: +pct(ttfts, 0.9).toFixed(1), p99: +pct(ttfts, 0.99).toFixed(1) } }));
