// openai_test.mjs - end-to-end checks of `quarrel serve` through the official OpenAI SDK
// (pinned in package.json) and plain fetch. Run by test_openai.sh with:
//   BASE_URL (http://127.0.0.1:PORT), API_KEY, REFERENCE (llama.cpp's stories260K.json).
// Expected texts come from llama.cpp's greedy runs in the reference file.
import OpenAI from 'openai';
import assert from 'node:assert/strict';
import { check, finish } from './harness.mjs';
import fs from 'node:fs';

const BASE = process.env.BASE_URL;
const KEY = process.env.API_KEY;
const ref = JSON.parse(fs.readFileSync(process.env.REFERENCE, 'utf8'));
const client = new OpenAI({ baseURL: BASE + '/v1', apiKey: KEY, timeout: 60000, maxRetries: 0 });


const auth = { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' };
async function post(path, body, headers = auth) {
  const r = await fetch(BASE + path, { method: 'POST', headers, body });
  const text = await r.text();
  return { status: r.status, text };
}
async function metrics() {
  const r = await fetch(BASE + '/metrics', { headers: auth });
  assert.equal(r.status, 200);
  return r.text();
}
function metric(text, name) {
  const m = text.match(new RegExp('^' + name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + ' ([0-9.e+-]+)$', 'm'));
  return m ? Number(m[1]) : NaN;
}
async function lone(prompt, n) {
  const r = await client.completions.create({ model: 'x', prompt, max_tokens: n, temperature: 0 });
  return r.choices[0].text;
}
async function streamed(prompt, n) {
  const s = await client.completions.create({ model: 'x', prompt, max_tokens: n, temperature: 0, stream: true });
  let text = '', finish = null;
  for await (const chunk of s) {
    text += chunk.choices[0].text;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  return { text, finish };
}

await check('GET /v1/models lists the model', async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].id, 'stories260K');
  assert.equal(list.data[0].object, 'model');
});

await check('completions: greedy text equals llama.cpp for every reference prompt', async () => {
  for (const c of ref.cases) {
    const n = c.greedy_ids.length;
    const r = await client.completions.create({ model: 'stories260K', prompt: c.prompt, max_tokens: n, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0].text, c.greedy_text, `prompt ${JSON.stringify(c.prompt)}`);
    assert.equal(r.choices[0].finish_reason, c.stopped_at_eog ? 'stop' : 'length');
    assert.equal(r.usage.prompt_tokens, c.prompt_tokens.length);
    assert.equal(r.usage.completion_tokens, n);
    assert.equal(r.usage.total_tokens, n + c.prompt_tokens.length);
  }
});

await check('completions: prompt as token ids gives the same text', async () => {
  const c = ref.cases[0];
  const r = await client.completions.create({ model: 'x', prompt: c.prompt_tokens, max_tokens: 16, temperature: 0 });
  assert.ok(c.greedy_text.startsWith(r.choices[0].text) && r.choices[0].text.length > 0);
});

await check('chat: a completion with usage and finish_reason', async () => {
  const r = await client.chat.completions.create({
    model: 'stories260K', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 12, temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  if (r.choices[0].finish_reason === 'length') assert.equal(r.usage.completion_tokens, 12);
  assert.ok(r.usage.prompt_tokens > 5); // the chatml wrapping adds tokens to the 4 words
});

await check('chat streaming: deltas add up to the non-streamed answer; usage chunk', async () => {
  const body = { model: 'x', messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 20, temperature: 0 };
  const whole = await client.chat.completions.create(body);
  const s = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '', roles = 0, finish = null, usage = null, n = 0;
  for await (const chunk of s) {
    n++;
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    const d = chunk.choices[0].delta;
    if (d.role) roles++;
    if (d.content) text += d.content;
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.ok(n >= 3);
  assert.equal(roles, 1);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

await check('stop strings: text ends before the stop string, finish_reason stop', async () => {
  const c = ref.cases[0];
  const at = c.greedy_text.indexOf('girl');
  assert.ok(at > 0);
  const r = await client.completions.create({ model: 'x', prompt: c.prompt, max_tokens: 40, temperature: 0, stop: ['zzz', 'girl'] });
  assert.equal(r.choices[0].text, c.greedy_text.slice(0, at));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await streamed(c.prompt, 40);
  assert.equal(s.finish, 'length');
});

await check('logprobs: chat top_logprobs are sorted and the greedy pick is the first', async () => {
  const r = await client.chat.completions.create({
    model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens - (r.choices[0].finish_reason === 'stop' ? 1 : 0));
  for (const t of lp) {
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs[0].token, t.token);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
    assert.ok(t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
  }
  assert.equal(lp.map((t) => t.token).join(''), r.choices[0].message.content);
});

await check('logit_bias -100 bans the greedy token', async () => {
  const c = ref.cases[0];
  const first = c.greedy_ids[0];
  const r = await client.completions.create({ model: 'x', prompt: c.prompt, max_tokens: 1, temperature: 0, logprobs: 1 });
  assert.equal(r.choices[0].text, c.greedy_text.slice(0, r.choices[0].text.length));
  const b = await client.completions.create({
    model: 'x', prompt: c.prompt, max_tokens: 1, temperature: 0, logit_bias: { [first]: -100 },
  });
  assert.notEqual(b.choices[0].text, r.choices[0].text);
});

await check('SDK errors: 400 names the field, 401 for a wrong key, 404 for an unknown route', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'x' }], temperature: 7 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /'temperature' must be between 0 and 2/.test(e.message));
  const bad = new OpenAI({ baseURL: BASE + '/v1', apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(bad.completions.create({ model: 'x', prompt: 'a' }), (e) => e.status === 401);
  await assert.rejects(client.moderations.create({ model: 'x', input: 'a' }), (e) => e instanceof OpenAI.NotFoundError);
});

await check('a prompt longer than a slot gets 400 saying so (no truncation)', async () => {
  const long = 'Once upon a time there was a cat. '.repeat(200);
  await assert.rejects(client.completions.create({ model: 'x', prompt: long, max_tokens: 4 }),
    (e) => e.status === 400 && /the prompt is \d+ tokens but a slot's context holds 256/.test(e.message));
});

// llama.cpp's embeddings of stories260K (mean pooling, not normalised): the server's
// L2-normalised vectors must equal them divided by their norm, within the file's tolerance
// divided by that norm.
const embedRefs = JSON.parse(fs.readFileSync(process.env.EMBED_REFS, 'utf8'));
const embedTol = embedRefs.tolerance['stories260K.gguf'].abs;
const meanCases = embedRefs.cases.filter((c) => c.model === 'stories260K.gguf' && c.pooling === 'mean');
function assertUnitRef(got, ref, what) {
  const norm = Math.hypot(...ref);
  assert.equal(got.length, ref.length, `${what}: length`);
  for (let j = 0; j < ref.length; j++)
    assert.ok(Math.abs(got[j] - ref[j] / norm) <= embedTol / norm,
      `${what}[${j}]: ${got[j]} vs llama.cpp ${ref[j] / norm} (tolerance ${embedTol / norm})`);
}

await check('embeddings: base64 (the SDK default) and float equal llama.cpp, usage counts BOS', async () => {
  assert.equal(meanCases.length, 3);
  const input = meanCases.map((c) => c.text);
  const tokens = meanCases.reduce((n, c) => n + c.tokens.length, 0);
  const b64 = await client.embeddings.create({ model: 'stories260K', input });
  const flt = await client.embeddings.create({ model: 'stories260K', input, encoding_format: 'float' });
  for (const r of [b64, flt]) {
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 3);
    assert.equal(r.usage.prompt_tokens, tokens);
    assert.equal(r.usage.total_tokens, tokens);
    r.data.forEach((d, i) => {
      assert.equal(d.index, i);
      assertUnitRef(d.embedding, meanCases[i].rows[0], `input ${i}`);
    });
  }
  // the raw base64 is little-endian float32 bytes
  const raw = await post('/v1/embeddings', JSON.stringify({ input: 'a', encoding_format: 'base64' }));
  const bytes = Buffer.from(JSON.parse(raw.text).data[0].embedding, 'base64');
  const floats = [];
  for (let j = 0; j < bytes.length; j += 4) floats.push(bytes.readFloatLE(j));
  assertUnitRef(floats, meanCases[2].rows[0], 'base64 of "a"');
  // token ids and arrays of them give the same vectors
  const ids = await client.embeddings.create({ model: 'x', input: meanCases[0].tokens, encoding_format: 'float' });
  assertUnitRef(ids.data[0].embedding, meanCases[0].rows[0], 'token input');
  const many = await client.embeddings.create({ model: 'x', input: meanCases.map((c) => c.tokens), encoding_format: 'float' });
  many.data.forEach((d, i) => assertUnitRef(d.embedding, meanCases[i].rows[0], `token arrays ${i}`));
});

await check('embeddings: bad input gets 400 naming the field', async () => {
  for (const [body, msg] of [
    ['{}', "'input' is required"],
    ['{"input": ""}', "'input' must not be an empty string"],
    ['{"input": []}', "'input' must be a string"],
    ['{"input": [1, 99999]}', "'input\\[1\\]' must be a token id"],
    ['{"input": "a", "encoding_format": "hex"}', "'encoding_format' must be"],
    ['{"input": "a", "model": 3}', "'model' must be a string"],
  ]) {
    const r = await post('/v1/embeddings', body);
    assert.equal(r.status, 400, body);
    assert.match(JSON.parse(r.text).error.message, new RegExp(msg), body);
  }
});

await check('malformed requests: status codes and messages', async () => {
  const chat = '/v1/chat/completions', comp = '/v1/completions';
  const cases = [
    [chat, '{"messages": [', auth, 400, 'not valid JSON'],
    [chat, '[]', auth, 400, 'must be a JSON object'],
    [chat, '{}', auth, 400, "'messages' is required"],
    [chat, '{"messages":[{"role":"user","content":"x"}],"max_tokens":"5"}', auth, 400, "'max_tokens' must be an integer"],
    [chat, '{"messages":[{"role":"user","content":"x"}],"stop":5}', auth, 400, "'stop' must be a string or an array"],
    [chat, '{"messages":[{"role":"user","content":"x"}],"logit_bias":{"99999":1}}', auth, 400, "key '99999' is not a token id"],
    [chat, '{"messages":[{"role":"user","content":"x"}],"stream":1}', auth, 400, "'stream' must be a boolean"],
    [comp, '{"prompt":7}', auth, 400, "'prompt' must be a string or an array"],
    [comp, '{"prompt":[1,100000]}', auth, 400, "'prompt[1]' must be a token id"],
    [comp, '{"prompt":"a","n":2}', auth, 400, "'n' must be 1"],
    [comp, '{"prompt":"a"}', { 'Content-Type': 'application/json' }, 401, 'API key'],
    [comp, '{"prompt":"a"}', { Authorization: 'Bearer nope' }, 401, 'API key'],
    ['/tokenize', '{"content":3}', auth, 400, "'content' must be a string"],
    ['/detokenize', '{"tokens":[1,"a"]}', auth, 400, "'tokens[1]' must be a token id"],
    ['/v1/nothing', '{}', auth, 404, 'no route'],
    [comp, '{"prompt":"' + 'a'.repeat(2 * 1024 * 1024) + '"}', auth, 413, 'larger than the limit'],
  ];
  for (const [path, body, headers, status, msg] of cases) {
    const r = await post(path, body, headers);
    assert.equal(r.status, status, `${path} ${body.slice(0, 60)}: ${r.text}`);
    const e = JSON.parse(r.text);
    assert.ok(e.error && typeof e.error.message === 'string', r.text);
    assert.ok(e.error.message.includes(msg), `${path} ${body.slice(0, 60)}: '${e.error.message}' lacks '${msg}'`);
  }
  const g = await fetch(BASE + '/v1/completions', { headers: auth });
  assert.equal(g.status, 405);
});

await check('tokenize / detokenize round trip (llama.cpp server shapes)', async () => {
  const c = ref.cases[1];
  const t = JSON.parse((await post('/tokenize', JSON.stringify({ content: c.prompt, add_special: true }))).text);
  assert.deepEqual(t.tokens, c.prompt_tokens);
  const p = JSON.parse((await post('/tokenize', JSON.stringify({ content: 'Tom', with_pieces: true }))).text);
  assert.equal(p.tokens.map((x) => x.piece).join(''), ' Tom');
  const d = JSON.parse((await post('/detokenize', JSON.stringify({ tokens: c.prompt_tokens.slice(1) }))).text);
  assert.equal(d.content, ' ' + c.prompt);
});

await check('prefix reuse: a repeated prompt reuses the cached prefix', async () => {
  const prompt = 'The dog ran to the big tree in the park and';
  const before = metric(await metrics(), 'quarrel_prompt_tokens_reused_total');
  const a = await client.completions.create({ model: 'x', prompt, max_tokens: 8, temperature: 0 });
  const mid = metric(await metrics(), 'quarrel_prompt_tokens_reused_total');
  const b = await client.completions.create({ model: 'x', prompt, max_tokens: 8, temperature: 0 });
  const after = metric(await metrics(), 'quarrel_prompt_tokens_reused_total');
  assert.equal(b.choices[0].text, a.choices[0].text);
  // the whole prompt but its last token (evaluated again for its logits) comes from the cache
  assert.equal(after - mid, a.usage.prompt_tokens - 1, `reused ${before} -> ${mid} -> ${after}`);
});

await check('8 concurrent greedy streams get exactly the text of a lone request', async () => {
  const prompts = ref.cases.map((c) => c.prompt).concat([
    'Lily and Ben', 'One day, a little bird', 'The sun was', 'Sam had a red', 'In the garden',
  ]);
  assert.equal(prompts.length, 8);
  const n = 48;
  const alone = [];
  for (const p of prompts) alone.push(await lone(p, n));
  const m0 = await metrics();
  const together = await Promise.all(prompts.map((p) => streamed(p, n)));
  const m1 = await metrics();
  // continuous batching: fewer decode steps than generated tokens (without batching every
  // step would carry one token, a ratio of at most 1; how far above 1 it gets depends on how
  // the clients' arrivals overlap, which a loaded machine spreads out)
  const steps = metric(m1, 'quarrel_decode_steps_total') - metric(m0, 'quarrel_decode_steps_total');
  const gen = metric(m1, 'quarrel_generated_tokens_total') - metric(m0, 'quarrel_generated_tokens_total');
  assert.equal(gen, 8 * n);
  assert.ok(gen / steps >= 1.5, `${gen} tokens in ${steps} decode steps`);
  console.log(`     ${gen} tokens in ${steps} decode steps`);
  for (let i = 0; i < prompts.length; i++) {
    assert.equal(together[i].text, alone[i], `prompt ${JSON.stringify(prompts[i])}`);
    if (i < ref.cases.length) assert.equal(alone[i], ref.cases[i].greedy_text.slice(0, alone[i].length));
  }
});

await check('a client that aborts mid-stream frees its slot; the server keeps serving', async () => {
  const cancelled0 = metric(await metrics(), 'quarrel_requests_cancelled_total');
  const gen0 = metric(await metrics(), 'quarrel_generated_tokens_total');
  const ac = new AbortController();
  const s = await client.completions.create(
    { model: 'x', prompt: 'Once upon a time', max_tokens: 2000, temperature: 0, stream: true }, { signal: ac.signal });
  let got = 0;
  try {
    for await (const chunk of s) {
      if (chunk.choices[0].text) got++;
      if (got === 3) {
        ac.abort(); // closes the connection mid-stream
        break;
      }
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', String(e));
  }
  assert.ok(got >= 3);
  let busy = NaN;
  for (let i = 0; i < 600; i++) { // the slot is freed at the next step: wait for it
    busy = metric(await metrics(), 'quarrel_slots_busy');
    if (busy === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(busy, 0);
  const m = await metrics();
  assert.equal(metric(m, 'quarrel_requests_cancelled_total') - cancelled0, 1);
  // it stopped early: far fewer tokens than the 255 the slot had room for
  assert.ok(metric(m, 'quarrel_generated_tokens_total') - gen0 < 200);
  const ok = await lone(ref.cases[0].prompt, 10);
  assert.equal(ok, ref.cases[0].greedy_text.slice(0, ok.length));
});

await check('/metrics: Prometheus counters, gauges and histograms', async () => {
  const m = await metrics();
  assert.ok(metric(m, 'quarrel_requests_total{status="200"}') > 10);
  assert.ok(metric(m, 'quarrel_requests_total{status="400"}') >= 10);
  assert.ok(metric(m, 'quarrel_requests_total{status="401"}') >= 2);
  assert.ok(metric(m, 'quarrel_generated_tokens_total') > 300);
  assert.ok(metric(m, 'quarrel_generation_tokens_per_second') > 0);
  assert.equal(metric(m, 'quarrel_queue_depth'), 0);
  assert.equal(metric(m, 'quarrel_slots_total'), 8);
  assert.ok(metric(m, 'quarrel_kv_cache_used_cells') > 0);
  for (const h of ['time_to_first_token', 'inter_token_latency', 'request_duration']) {
    assert.match(m, new RegExp(`# TYPE quarrel_${h}_seconds histogram`));
    const count = metric(m, `quarrel_${h}_seconds_count`);
    assert.ok(count > 0, h);
    assert.equal(metric(m, `quarrel_${h}_seconds_bucket{le="+Inf"}`), count);
  }
});

finish('OpenAI API');
