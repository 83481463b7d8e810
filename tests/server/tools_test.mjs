// tools_test.mjs - structured output and tool calling of `quarrel serve` through the official
// OpenAI SDK, every output validated with ajv against the schema it was asked to follow. Run by
// test_tools.sh with QWEN_URL (qwen2-tiny, Qwen 2.5's template: Hermes <tool_call>),
// QWEN_CHATML_URL (qwen2-tiny, built-in chatml: the generic JSON form) and STORIES_URL
// (stories260K, chatml: response_format). The models are tiny and say nothing sensible: only
// the grammar makes their output valid, so these checks fail without the grammar engine.
import OpenAI from 'openai';
import Ajv from 'ajv';
import assert from 'node:assert/strict';
import { check, finish } from './harness.mjs';

const ajv = new Ajv({ strict: false });
const mk = (url) => new OpenAI({ baseURL: url + '/v1', apiKey: 'none', timeout: 120000, maxRetries: 0 });
const qwen = mk(process.env.QWEN_URL);
const generic = mk(process.env.QWEN_CHATML_URL);
const stories = mk(process.env.STORIES_URL);


function validate(schema, value, what) {
  const ok = ajv.validate(schema, value);
  assert.ok(ok, `${what} ${JSON.stringify(value)} does not validate: ${ajv.errorsText()}`);
}

// Expect a 400 whose OpenAI error object's message contains each of `parts`.
async function expect400(promise, ...parts) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, 400, `status ${e.status}: ${e.message}`);
    assert.equal(e.error.type, 'invalid_request_error');
    for (const p of parts) assert.ok(e.error.message.includes(p), `message "${e.error.message}" lacks "${p}"`);
    return;
  }
  assert.fail('the request succeeded');
}

const weather = {
  type: 'object',
  properties: {
    city: { type: 'string', maxLength: 12 },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
  },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const time = {
  type: 'object',
  properties: { zone: { type: 'string', maxLength: 8 } },
  required: ['zone'],
  additionalProperties: false,
};
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: weather } },
  { type: 'function', function: { name: 'get_time', description: 'Time in a zone', parameters: time } },
];
const params = { get_weather: weather, get_time: time };
const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];

function checkCalls(msg, finish, { n, name } = {}) {
  assert.equal(finish, 'tool_calls');
  assert.ok(Array.isArray(msg.tool_calls) && msg.tool_calls.length >= 1, 'no tool_calls');
  if (n !== undefined) assert.equal(msg.tool_calls.length, n);
  for (const c of msg.tool_calls) {
    assert.equal(c.type, 'function');
    assert.ok(typeof c.id === 'string' && c.id.length > 0);
    assert.ok(c.function.name in params, `unknown function ${c.function.name}`);
    if (name) assert.equal(c.function.name, name);
    validate(params[c.function.name], JSON.parse(c.function.arguments), `${c.function.name} arguments`);
  }
}

// Deltas of a streamed answer put back together as OpenAI's clients do.
async function accumulate(stream) {
  let content = '', finish = null;
  const calls = [];
  for await (const chunk of stream) {
    if (!chunk.choices.length) continue;
    const ch = chunk.choices[0];
    if (ch.delta.content) content += ch.delta.content;
    for (const d of ch.delta.tool_calls || []) {
      if (!calls[d.index]) {
        assert.ok(d.id && d.type === 'function' && d.function.name, `first delta of call ${d.index} lacks id/type/name`);
        assert.equal(d.function.arguments, '');
        calls[d.index] = { id: d.id, type: d.type, function: { name: d.function.name, arguments: '' } };
      } else {
        assert.equal(d.id, undefined);
        calls[d.index].function.arguments += d.function.arguments || '';
      }
    }
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { message: { content, tool_calls: calls.length ? calls : undefined }, finish };
}

// ---- response_format ----

await check('response_format json_schema: the content validates against the schema', async () => {
  const schema = {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 10 }, happy: { type: 'boolean' } },
    required: ['name', 'happy'],
    additionalProperties: false,
  };
  const r = await stories.chat.completions.create({
    model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 150, temperature: 0,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
  });
  assert.equal(r.choices[0].finish_reason, 'stop');
  validate(schema, JSON.parse(r.choices[0].message.content), 'content');
});

await check('response_format json_object: the content is a JSON object', async () => {
  const r = await stories.chat.completions.create({
    model: 'x', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 150, temperature: 0,
    response_format: { type: 'json_object' },
  });
  const v = JSON.parse(r.choices[0].message.content);
  assert.ok(v && typeof v === 'object' && !Array.isArray(v));
});

await check('json_schema and grammar (llama.cpp fields) on /v1/completions', async () => {
  const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 99 } }, required: ['n'] };
  const r = await stories.completions.create({ model: 'x', prompt: 'Once', max_tokens: 60, temperature: 0, json_schema: schema });
  validate(schema, JSON.parse(r.choices[0].text), 'text');
  const g = await stories.completions.create({ model: 'x', prompt: 'Once', max_tokens: 20, temperature: 0, grammar: 'root ::= ("yes" | "no") "."' });
  assert.match(g.choices[0].text, /^(yes|no)\.$/);
});

await check('bad structured-output requests get 400 naming the problem', async () => {
  await expect400(stories.chat.completions.create({
    model: 'x', messages: ask, response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'no-such-type' } } },
  }), 'response_format.json_schema.schema');
  await expect400(stories.chat.completions.create({
    model: 'x', messages: ask, response_format: { type: 'json_schema', json_schema: { name: 'n', schema: 'object' } },
  }), 'must be a JSON schema object');
  await expect400(stories.completions.create({ model: 'x', prompt: 'a', grammar: 'root ::= "a" (' }), "'grammar' does not parse", 'line 1');
  await expect400(stories.completions.create({ model: 'x', prompt: 'a', grammar: 'root ::= undefined-rule' }), "'grammar' does not parse");
  await expect400(stories.chat.completions.create({
    model: 'x', messages: ask, grammar: 'root ::= "a"', response_format: { type: 'json_object' },
  }), 'cannot be combined');
});

// ---- tools, Hermes format (Qwen 2.5's template) ----

let required;
await check('tools, tool_choice required: valid calls, content null, finish_reason tool_calls', async () => {
  const r = await qwen.chat.completions.create({ model: 'x', messages: ask, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 300, temperature: 0 });
  const m = r.choices[0].message;
  assert.equal(m.content, null);
  checkCalls(m, r.choices[0].finish_reason);
  required = r;
});

await check('tools, a named function: one call of it', async () => {
  const r = await qwen.chat.completions.create({
    model: 'x', messages: ask, tools, max_tokens: 200, temperature: 0,
    tool_choice: { type: 'function', function: { name: 'get_time' } },
  });
  checkCalls(r.choices[0].message, r.choices[0].finish_reason, { n: 1, name: 'get_time' });
});

await check('parallel_tool_calls false: exactly one call', async () => {
  const r = await qwen.chat.completions.create({
    model: 'x', messages: ask, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 200, temperature: 0,
  });
  checkCalls(r.choices[0].message, r.choices[0].finish_reason, { n: 1 });
});

await check('streamed tool calls add up to the non-streamed ones (greedy)', async () => {
  assert.ok(required, 'the non-streamed request failed');
  const s = await qwen.chat.completions.create({ model: 'x', messages: ask, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 300, temperature: 0, stream: true });
  const { message, finish } = await accumulate(s);
  checkCalls(message, finish);
  assert.equal(message.content, '');
  const strip = (calls) => calls.map((c) => [c.function.name, c.function.arguments]);
  assert.deepEqual(strip(message.tool_calls), strip(required.choices[0].message.tool_calls));
});

await check('tool_choice auto answers with content or valid calls', async () => {
  const r = await qwen.chat.completions.create({ model: 'x', messages: ask, tools, max_tokens: 40, temperature: 0 });
  const c = r.choices[0];
  if (c.message.tool_calls && c.message.tool_calls.length) checkCalls(c.message, c.finish_reason);
  else assert.equal(typeof c.message.content, 'string');
});

await check('a conversation with a call and its result renders and continues', async () => {
  const r = await qwen.chat.completions.create({
    model: 'x', max_tokens: 8, temperature: 0, tools,
    messages: [
      ...ask,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_abc', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' } }] },
      { role: 'tool', tool_call_id: 'call_abc', content: '22 degrees' },
    ],
  });
  assert.equal(r.choices[0].message.role, 'assistant');
});

await check('bad tool requests get 400 naming the problem', async () => {
  await expect400(qwen.chat.completions.create({
    model: 'x', messages: ask, tools, tool_choice: { type: 'function', function: { name: 'no_such_tool' } },
  }), "'tool_choice' names the function 'no_such_tool', which is not in 'tools'");
  await expect400(qwen.chat.completions.create({
    model: 'x', messages: ask, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'no-such-type' } } }],
  }), 'tools[0].function.parameters');
  await expect400(qwen.chat.completions.create({ model: 'x', messages: ask, tools, tool_choice: 'sometimes' }), "'tool_choice' must be");
});

// ---- tools, generic JSON form (built-in chatml) ----

await check('generic format: required calls validate; streamed equals non-streamed', async () => {
  const body = { model: 'x', messages: ask, tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 300, temperature: 0 };
  const r = await generic.chat.completions.create(body);
  checkCalls(r.choices[0].message, r.choices[0].finish_reason);
  const { message, finish } = await accumulate(await generic.chat.completions.create({ ...body, stream: true }));
  checkCalls(message, finish);
  const strip = (calls) => calls.map((c) => [c.function.name, c.function.arguments]);
  assert.deepEqual(strip(message.tool_calls), strip(r.choices[0].message.tool_calls));
});

await check('generic format, auto: a call or a {"response"} turned into content', async () => {
  const r = await generic.chat.completions.create({ model: 'x', messages: ask, tools, max_tokens: 200, temperature: 0 });
  const c = r.choices[0];
  if (c.message.tool_calls && c.message.tool_calls.length) checkCalls(c.message, c.finish_reason);
  else {
    assert.equal(typeof c.message.content, 'string');
    assert.equal(c.finish_reason, 'stop');
  }
});

finish('tool and structured-output');
