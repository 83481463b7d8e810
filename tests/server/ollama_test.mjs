// ollama_test.mjs - end-to-end checks of `quarrel serve`'s ollama API through the official
// ollama client (npm ollama, pinned in package.json) and plain fetch. Run by test_ollama.sh with
//   BASE_URL  stories260K, no chat template (generate sends the prompt as is), API key API_KEY
//   TMPL_URL  stories260K with a template that renders just the messages' contents, so a chat
//             prompt is the reference prompt
//   QWEN_URL  qwen2-tiny with Qwen 2.5's chat template (tool calls)
//   PULL_URL  stories260K, pulling from the test registry (which serves it as "stories") into
//             the ollama store STORE
//   REFERENCE llama.cpp's stories260K.json; EMBED_REFS llama.cpp's embeddings (embed_refs.json)
// Expected texts and vectors come from llama.cpp's runs in those files.
import { Ollama } from 'ollama';
import Ajv from 'ajv';
import assert from 'node:assert/strict';
import { check, finish } from './harness.mjs';
import fs from 'node:fs';

const BASE = process.env.BASE_URL;
const KEY = process.env.API_KEY;
const ref = JSON.parse(fs.readFileSync(process.env.REFERENCE, 'utf8'));
const embedRefs = JSON.parse(fs.readFileSync(process.env.EMBED_REFS, 'utf8'));
const headers = { Authorization: `Bearer ${KEY}` };
const ollama = new Ollama({ host: BASE, headers });
const tmpl = new Ollama({ host: process.env.TMPL_URL });
const ajv = new Ajv({ strict: false });
const MODEL = 'stories260K';
const greedy = { temperature: 0 };


async function post(path, body, method = 'POST') {
  const r = await fetch(BASE + path, { method, headers: { ...headers, 'Content-Type': 'text/plain' }, body });
  return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
}

// the text of a reference case's first n greedy tokens
function firstTokens(c, n) {
  return Buffer.concat(c.greedy_pieces_hex.slice(0, n).map((h) => Buffer.from(h, 'hex'))).toString('utf8');
}

function assertDone(r, evalCount, reason) {
  assert.equal(r.done, true);
  assert.equal(r.done_reason, reason);
  assert.equal(r.eval_count, evalCount);
  assert.equal(r.load_duration, 0);
  for (const k of ['total_duration', 'prompt_eval_duration', 'eval_duration']) {
    assert.ok(Number.isInteger(r[k]) && r[k] >= 0, `${k} = ${r[k]}`);
  }
  assert.ok(r.total_duration >= r.eval_duration);
  assert.ok(!Number.isNaN(Date.parse(r.created_at)));
}

async function collect(stream, field) {
  let text = '', last = null, n = 0;
  for await (const part of stream) {
    n++;
    if (!part.done) assert.equal(part.done, false);
    text += field === 'response' ? part.response : part.message.content;
    last = part;
  }
  return { text, last, n };
}

await check('list, ps, version and show describe the served model', async () => {
  const list = await ollama.list();
  assert.equal(list.models.length, 1);
  const m = list.models[0];
  assert.equal(m.name, 'stories260K:latest');
  assert.equal(m.model, 'stories260K:latest');
  assert.equal(m.size, fs.statSync(process.env.MODEL_PATH).size);
  assert.ok(!Number.isNaN(Date.parse(m.modified_at)));
  assert.deepEqual(m.details, {
    parent_model: '', format: 'gguf', family: 'llama', families: ['llama'],
    parameter_size: m.details.parameter_size, quantization_level: m.details.quantization_level,
  });
  assert.match(m.details.parameter_size, /^\d+(\.\d+)?[KMB]?$/);
  const ps = await ollama.ps();
  assert.equal(ps.models[0].name, 'stories260K:latest');
  assert.equal(ps.models[0].size_vram, 0);
  assert.ok(Date.parse(ps.models[0].expires_at) > Date.now());
  assert.equal(typeof (await ollama.version()).version, 'string');
  for (const model of [MODEL, 'stories260K:latest']) {
    const show = await ollama.show({ model });
    assert.equal(show.details.format, 'gguf');
    assert.equal(show.model_info['general.architecture'], 'llama');
    assert.equal(typeof show.model_info['llama.context_length'], 'number');
    assert.deepEqual(show.model_info['tokenizer.ggml.tokens'], []); // the vocabulary only when verbose
    assert.deepEqual(show.capabilities, ['completion']);
    assert.equal(show.template, '');
  }
  const verbose = await post('/api/show', JSON.stringify({ model: MODEL, verbose: true }));
  assert.equal(JSON.parse(verbose.text).model_info['tokenizer.ggml.tokens'].length, 512);
});

await check('generate (no template: the prompt as is): greedy text equals llama.cpp, streamed and not', async () => {
  for (const c of ref.cases) {
    const n = c.greedy_ids.length;
    const reason = c.stopped_at_eog ? 'stop' : 'length';
    const r = await ollama.generate({ model: MODEL, prompt: c.prompt, stream: false, options: { ...greedy, num_predict: n } });
    assert.equal(r.response, c.greedy_text, `prompt ${JSON.stringify(c.prompt)}`);
    assert.equal(r.model, MODEL);
    assert.equal(r.prompt_eval_count, c.prompt_tokens.length);
    assertDone(r, n, reason);
    const s = await collect(await ollama.generate({ model: MODEL, prompt: c.prompt, stream: true, options: { top_k: 1, seed: 3, num_predict: n } }), 'response');
    assert.equal(s.text, c.greedy_text);
    assert.ok(s.n >= 2); // at least one text object and the last (a fast model may batch the text)
    assert.equal(s.last.response, '');
    assertDone(s.last, n, reason);
  }
  const c = ref.cases[0];
  const raw = await ollama.generate({ model: 'stories260K:latest', prompt: c.prompt, raw: true, system: 'ignored', stream: false, options: { ...greedy, num_predict: 6 } });
  assert.equal(raw.response, firstTokens(c, 6));
});

await check('generate streams NDJSON by default; stream false is one JSON object', async () => {
  const s = await post('/api/generate', JSON.stringify({ model: MODEL, prompt: 'Once upon a time', options: { num_predict: 4 } }));
  assert.equal(s.status, 200);
  assert.equal(s.type, 'application/x-ndjson');
  const lines = s.text.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.length >= 2);
  assert.ok(lines.slice(0, -1).every((l) => l.done === false));
  assert.equal(lines.at(-1).done, true);
  const one = await post('/api/generate', JSON.stringify({ model: MODEL, prompt: 'Once upon a time', stream: false, options: { num_predict: 4 } }));
  assert.equal(one.type, 'application/json');
  assert.equal(JSON.parse(one.text).done, true);
  // no prompt: ollama's "load the model" answer
  const load = JSON.parse((await post('/api/generate', JSON.stringify({ model: MODEL }))).text);
  assert.equal(load.done, true);
  assert.equal(load.done_reason, 'load');
});

await check('chat through a chat template: greedy text equals llama.cpp, streamed and not', async () => {
  for (const c of ref.cases) {
    const n = c.greedy_ids.length;
    const messages = [{ role: 'user', content: c.prompt }];
    const r = await tmpl.chat({ model: MODEL, messages, stream: false, options: { ...greedy, num_predict: n } });
    assert.equal(r.message.role, 'assistant');
    assert.equal(r.message.content, c.greedy_text);
    assert.equal(r.prompt_eval_count, c.prompt_tokens.length);
    assertDone(r, n, c.stopped_at_eog ? 'stop' : 'length');
    const s = await collect(await tmpl.chat({ model: MODEL, messages, stream: true, options: { ...greedy, num_predict: n } }), 'message');
    assert.equal(s.text, c.greedy_text);
    assert.equal(s.last.message.content, '');
  }
  // generate through the same template: the user message is the prompt
  const c = ref.cases[1];
  const g = await tmpl.generate({ model: MODEL, prompt: c.prompt, stream: false, options: { ...greedy, num_predict: 8 } });
  assert.equal(g.response, firstTokens(c, 8));
});

await check('chat with the fallback template (chatml): streamed deltas add up to the answer', async () => {
  const body = { model: MODEL, messages: [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Tell me a story' }], options: { ...greedy, num_predict: 20 } };
  const whole = await ollama.chat({ ...body, stream: false });
  const s = await collect(await ollama.chat({ ...body, stream: true }), 'message');
  assert.equal(s.text, whole.message.content);
  assert.equal(s.last.eval_count, whole.eval_count);
  assert.equal(s.last.prompt_eval_count, whole.prompt_eval_count);
});

await check('options: stop, num_predict, top_k 1, seed, num_ctx', async () => {
  const c = ref.cases[0];
  const at = c.greedy_text.indexOf('girl');
  const stop = await ollama.generate({ model: MODEL, prompt: c.prompt, stream: false, options: { ...greedy, stop: ['zzz', 'girl'], num_predict: 40 } });
  assert.equal(stop.response, c.greedy_text.slice(0, at));
  assert.equal(stop.done_reason, 'stop');
  const three = await ollama.generate({ model: MODEL, prompt: c.prompt, stream: false, options: { ...greedy, num_predict: 3 } });
  assert.equal(three.response, firstTokens(c, 3));
  assert.equal(three.eval_count, 3);
  assert.equal(three.done_reason, 'length');
  // top_k 1 leaves the argmax whatever the temperature
  const k1 = await ollama.generate({ model: MODEL, prompt: c.prompt, stream: false, options: { temperature: 1.5, top_k: 1, num_predict: c.greedy_ids.length } });
  assert.equal(k1.response, c.greedy_text);
  // the same seed gives the same text; different seeds not always the same
  const seeded = (seed) => ollama.generate({ model: MODEL, prompt: 'Once upon a time', stream: false, options: { temperature: 1.2, top_k: 0, top_p: 1, seed, num_predict: 24 } }).then((r) => r.response);
  assert.equal(await seeded(42), await seeded(42));
  const texts = new Set(await Promise.all([1, 2, 3, 4, 5].map(seeded)));
  assert.ok(texts.size >= 2, 'five seeds gave one text');
  // num_ctx below the slot's context ends the generation there
  const small = await ollama.generate({ model: MODEL, prompt: c.prompt, stream: false, options: { ...greedy, num_ctx: 12 } });
  assert.equal(small.done_reason, 'length');
  assert.equal(small.eval_count, 12 - c.prompt_tokens.length + 1);
  assert.equal(small.response, firstTokens(c, small.eval_count));
});

await check('format: "json" gives a JSON object, a schema a valid instance', async () => {
  const j = await ollama.generate({ model: MODEL, prompt: 'Once upon a time', format: 'json', stream: false, options: { ...greedy, num_predict: 200 } });
  const v = JSON.parse(j.response);
  assert.equal(typeof v, 'object');
  assert.ok(v !== null && !Array.isArray(v));
  const schema = {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 99 }, good: { type: 'boolean' } },
    required: ['name', 'age', 'good'],
  };
  for (const temperature of [0, 1]) {
    const r = await ollama.chat({ model: MODEL, messages: [{ role: 'user', content: 'Lily' }], format: schema, stream: false, options: { temperature, seed: 7, num_predict: 200 } });
    const obj = JSON.parse(r.message.content);
    assert.ok(ajv.validate(schema, obj), `${r.message.content}: ${ajv.errorsText()}`);
  }
});

const embedTol = embedRefs.tolerance['stories260K.gguf'].abs;
const meanCases = embedRefs.cases.filter((c) => c.model === 'stories260K.gguf' && c.pooling === 'mean');

await check('embed: L2-normalised vectors equal llama.cpp (mean pooling); embeddings: not normalised', async () => {
  const r = await ollama.embed({ model: MODEL, input: meanCases.map((c) => c.text) });
  assert.equal(r.model, MODEL);
  assert.equal(r.embeddings.length, 3);
  assert.equal(r.prompt_eval_count, meanCases.reduce((n, c) => n + c.tokens.length, 0));
  r.embeddings.forEach((got, i) => {
    const want = meanCases[i].rows[0], norm = Math.hypot(...want);
    assert.equal(got.length, want.length);
    got.forEach((x, j) => assert.ok(Math.abs(x - want[j] / norm) <= embedTol / norm, `embed ${i}[${j}]`));
  });
  const one = await ollama.embed({ model: MODEL, input: meanCases[0].text, truncate: true, options: { num_ctx: 64 } });
  assert.deepEqual(one.embeddings[0], r.embeddings[0]);
  const none = await ollama.embed({ model: MODEL, input: '' });
  assert.deepEqual(none.embeddings, []);
  const old = await ollama.embeddings({ model: MODEL, prompt: meanCases[1].text });
  old.embedding.forEach((x, j) => assert.ok(Math.abs(x - meanCases[1].rows[0][j]) <= embedTol, `embeddings[${j}]`));
  // ollama cuts a long input to the context unless truncate is false
  const long = 'Once upon a time there was a cat. '.repeat(60);
  const cut = await ollama.embed({ model: MODEL, input: long });
  assert.equal(cut.prompt_eval_count, 256);
  await assert.rejects(ollama.embed({ model: MODEL, input: long, truncate: false }),
    (e) => e.status_code === 400 && /exceeds the context length/.test(e.error));
});

await check('errors: 404 for an unknown model, 400 for a malformed request, 401 without the key', async () => {
  await assert.rejects(ollama.generate({ model: 'llama3', prompt: 'x', stream: false }),
    (e) => e.status_code === 404 && e.error === "model 'llama3' not found");
  await assert.rejects(ollama.chat({ model: 'stories260K:7b', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status_code === 404);
  await assert.rejects(ollama.show({ model: 'other' }), (e) => e.status_code === 404);
  await assert.rejects(ollama.embed({ model: 'other', input: 'a' }), (e) => e.status_code === 404);
  await assert.rejects(ollama.generate({ model: MODEL, prompt: 'x', stream: false, options: { temperature: 'hot' } }),
    (e) => e.status_code === 400 && e.error === "'options.temperature' must be a number");
  const cases = [
    ['/api/generate', '{"model": ', 400, 'not valid JSON'],
    ['/api/generate', '[1]', 400, 'must be a JSON object'],
    ['/api/generate', '{"prompt": "x"}', 400, "'model' is required"],
    ['/api/generate', '{"model": "stories260K", "prompt": 3}', 400, "'prompt' must be a string"],
    ['/api/generate', '{"model": "stories260K", "prompt": "x", "format": "xml"}', 400, 'invalid format'],
    ['/api/generate', '{"model": "stories260K", "prompt": "x", "format": {"type": "nope"}}', 400, "'format' is not a usable JSON schema"],
    ['/api/generate', '{"model": "stories260K", "prompt": "x", "options": {"stop": 3}}', 400, "'options.stop' must be"],
    ['/api/generate', '{"model": "stories260K", "prompt": "x", "images": ["aGk="]}', 400, 'does not support images'],
    ['/api/chat', '{"model": "stories260K", "messages": {}}', 400, "'messages' must be an array"],
    ['/api/chat', '{"model": "stories260K", "messages": [{"content": "x"}]}', 400, "'messages\\[0\\].role' is missing"],
    ['/api/embed', '{"model": "stories260K", "input": [1]}', 400, 'invalid input type'],
    ['/api/embeddings', '{"prompt": "x"}', 400, "'model' is required"],
    ['/api/show', '{}', 400, "'model' is required"],
    ['/api/nothing', '{}', 404, 'no route'],
    ['/api/tags', '', 405, 'does not accept POST'],
  ];
  for (const [path, body, status, msg] of cases) {
    const r = await post(path, body);
    assert.equal(r.status, status, `${path} ${body}: ${r.text}`);
    assert.match(JSON.parse(r.text).error, new RegExp(msg), `${path} ${body}`);
  }
  const noKey = await fetch(BASE + '/api/tags');
  assert.equal(noKey.status, 401);
  assert.match((await noKey.json()).error, /API key/);
});

await check('delete: the served model cannot be deleted from under the server', async () => {
  await assert.rejects(ollama.delete({ model: MODEL }), (e) => e.status_code === 409 && /serving/.test(e.error));
});

await check('chat with tools: message.tool_calls in ollama\'s shape, arguments an object', async () => {
  const qwen = new Ollama({ host: process.env.QWEN_URL });
  const parameters = { type: 'object', properties: { city: { type: 'string', maxLength: 8 } }, required: ['city'] };
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters } }];
  // a tiny model calls only when made to: tool_choice and parallel_tool_calls are the OpenAI
  // route's fields, which /api/chat accepts too
  const body = { model: 'qwen2-tiny-q8_0', messages: [{ role: 'user', content: 'Weather in Tokyo?' }], tools, tool_choice: 'required', parallel_tool_calls: false, options: { ...greedy, num_predict: 80 } };
  const r = await qwen.chat({ ...body, stream: false });
  assert.equal(r.done_reason, 'stop');
  assert.equal(r.message.tool_calls.length, 1);
  const call = r.message.tool_calls[0].function;
  assert.equal(call.name, 'get_weather');
  assert.ok(ajv.validate(parameters, call.arguments), `${JSON.stringify(call.arguments)}: ${ajv.errorsText()}`);
  const calls = [];
  for await (const part of await qwen.chat({ ...body, stream: true })) if (part.message.tool_calls) calls.push(...part.message.tool_calls);
  assert.deepEqual(calls, r.message.tool_calls);
  // a conversation with the call and its result renders and answers
  const next = await qwen.chat({ model: 'qwen2-tiny-q8_0', stream: false, tools, options: { ...greedy, num_predict: 4 },
    messages: [...body.messages, r.message, { role: 'tool', content: 'sunny', tool_name: 'get_weather' }] });
  assert.equal(next.done, true);
});

await check('pull: ollama\'s progress objects, the model in the store; delete removes it', async () => {
  const puller = new Ollama({ host: process.env.PULL_URL });
  const blob = (d) => `${process.env.STORE}/blobs/sha256-${d.slice(7)}`;
  const statuses = [], digests = new Set();
  for await (const p of await puller.pull({ model: 'stories', stream: true })) {
    statuses.push(p.status);
    if (p.digest) {
      digests.add(p.digest);
      assert.match(p.digest, /^sha256:[0-9a-f]{64}$/);
      assert.equal(p.status, `pulling ${p.digest.slice(7, 19)}`);
      assert.ok(p.completed <= p.total);
    }
  }
  assert.equal(statuses[0], 'pulling manifest');
  assert.deepEqual(statuses.slice(-3), ['verifying sha256 digest', 'writing manifest', 'success']);
  assert.ok(digests.size >= 2);
  for (const d of digests) assert.ok(fs.existsSync(blob(d)), `${d} is not in the store`);
  // the model layer is the served file, byte for byte
  const gguf = fs.readFileSync(process.env.MODEL_PATH);
  assert.ok([...digests].some((d) => fs.existsSync(blob(d)) && fs.readFileSync(blob(d)).equals(gguf)));
  assert.ok(fs.existsSync(`${process.env.STORE}/manifests/registry.ollama.ai/library/stories/latest`));
  // again, not streamed, with ollama's older "name": one object
  const again = await fetch(process.env.PULL_URL + '/api/pull', { method: 'POST', body: JSON.stringify({ name: 'stories:latest', stream: false }) });
  assert.equal(again.status, 200);
  assert.deepEqual(await again.json(), { status: 'success' });
  await assert.rejects(puller.pull({ model: 'nope', stream: false }), (e) => e.status_code === 500 && /not found/.test(e.error));
  // a streamed failure ends with an error object, which the client throws
  await assert.rejects((async () => { for await (const p of await puller.pull({ model: 'nope', stream: true })) void p; })(),
    (e) => /not found/.test(e.message));
  await assert.rejects(puller.pull({ model: 'a/b/c/d', stream: false }), (e) => e.status_code === 400);
  // delete: the pulled model goes; the served one stays
  await puller.delete({ model: 'stories' });
  assert.ok(!fs.existsSync(`${process.env.STORE}/manifests/registry.ollama.ai/library/stories/latest`));
  for (const d of digests) assert.ok(!fs.existsSync(blob(d)), `${d} is still in the store`);
  await assert.rejects(puller.delete({ model: 'stories' }), (e) => e.status_code === 404 && e.error === "model 'stories' not found");
  await assert.rejects(puller.delete({ model: 'stories260K' }), (e) => e.status_code === 409);
});

finish('ollama API');
