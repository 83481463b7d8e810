/* page.js - the chat page's behaviour. The conversation lives here and is sent whole each turn
 * to POST /v1/chat/completions with stream: true; the Server-Sent Events are parsed as they
 * arrive; a reply is rendered as text with ``` fenced blocks as <pre><code> (model text only
 * ever enters the page as text nodes, never as HTML); Stop aborts the fetch and keeps the
 * partial reply; each reply ends with its tokens/s. window.quarrelPage exposes the pure parts
 * (renderReply, SseParser) for the tests. */
'use strict';
(function () {
  /* ---- pure parts ---- */

  /* Incremental Server-Sent-Events parser (the WHATWG rules this server's streams need): feed
   * it decoded text in pieces of any size; push returns the data of each event completed. */
  class SseParser {
    constructor() {
      this.buf = '';
      this.data = [];
    }
    push(text) {
      this.buf += text;
      const events = [];
      for (;;) {
        const m = /\r\n|\r|\n/.exec(this.buf);
        if (!m || (m[0] === '\r' && m.index === this.buf.length - 1)) break; /* \r\n split? */
        const line = this.buf.slice(0, m.index);
        this.buf = this.buf.slice(m.index + m[0].length);
        if (line === '') {
          if (this.data.length) events.push(this.data.join('\n'));
          this.data = [];
        } else if (line.startsWith('data:')) {
          this.data.push(line.slice(line[5] === ' ' ? 6 : 5));
        } /* comments and the event/id/retry fields: the server sends none the page needs */
      }
      return events;
    }
    /* the end of the stream: an event left without its blank line still counts */
    finish(text) {
      const events = this.push(text + '\n');
      if (this.data.length) events.push(this.data.join('\n'));
      this.data = [];
      return events;
    }
  }

  /* text with `inline code` into el, as text nodes and <code> elements */
  function appendInline(el, text) {
    text.split(/(`[^`\n]+`)/).forEach((part, i) => {
      if (i % 2) {
        const code = document.createElement('code');
        code.textContent = part.slice(1, -1);
        el.appendChild(code);
      } else if (part) {
        el.appendChild(document.createTextNode(part));
      }
    });
  }

  /* A reply as a DocumentFragment: lines between ```lang fences become
   * <pre><code class="language-lang">; a fence not closed yet (a reply still streaming) runs
   * to the end; the rest is <div class="text"> blocks with inline code. */
  function renderReply(text) {
    const frag = document.createDocumentFragment();
    let prose = [];
    let code = null;
    let lang = '';
    const flushProse = () => {
      if (!prose.length) return;
      const div = document.createElement('div');
      div.className = 'text';
      appendInline(div, prose.join('\n'));
      frag.appendChild(div);
      prose = [];
    };
    const flushCode = () => {
      const pre = document.createElement('pre');
      const el = document.createElement('code');
      if (lang) el.className = 'language-' + lang;
      el.textContent = code.join('\n');
      pre.appendChild(el);
      frag.appendChild(pre);
      code = null;
    };
    for (const line of text.split('\n')) {
      const fence = /^ {0,3}```\s*([\w+#.-]*)\s*$/.exec(line);
      if (code === null) {
        if (fence) {
          flushProse();
          code = [];
          lang = fence[1];
        } else {
          prose.push(line);
        }
      } else if (fence && !fence[1]) {
        flushCode();
      } else {
        code.push(line);
      }
    }
    if (code !== null) flushCode();
    flushProse();
    return frag;
  }

  window.quarrelPage = { renderReply, SseParser };

  /* ---- the page ---- */

  const $ = (id) => document.getElementById(id);
  const conversation = []; /* the turns so far, {role, content}; the system prompt is read anew */
  let controller = null; /* the AbortController of the reply streaming in, if any */
  let chatId = 0; /* bumped by New chat, so a reply ending afterwards is not kept */

  function addMessage(role, text) {
    const div = document.createElement('div');
    div.className = 'msg ' + role;
    const label = document.createElement('div');
    label.className = 'role';
    label.textContent = role;
    const content = document.createElement('div');
    content.className = 'content';
    content.appendChild(renderReply(text));
    div.append(label, content);
    $('log').appendChild(div);
    return div;
  }

  function setContent(div, text) {
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    div.querySelector('.content').replaceChildren(renderReply(text));
    if (atBottom) window.scrollTo(0, document.body.scrollHeight);
  }

  function showError(message) {
    $('error').textContent = message;
    $('error').hidden = !message;
  }

  function setBusy(busy) {
    $('send').disabled = busy;
    $('stop').disabled = !busy;
  }

  function requestBody() {
    const messages = [];
    const system = $('system').value;
    if (system.trim()) messages.push({ role: 'system', content: system });
    messages.push(...conversation);
    const body = {
      messages,
      stream: true,
      stream_options: { include_usage: true },
      temperature: Number($('temperature').value),
    };
    const max = parseInt($('max-tokens').value, 10);
    if (max > 0) body.max_tokens = max;
    return body;
  }

  function requestHeaders() {
    const headers = { 'Content-Type': 'application/json' };
    const key = $('api-key').value.trim();
    if (key) headers.Authorization = 'Bearer ' + key;
    return headers;
  }

  /* the server's {"error": {"message"}} of a failed request, else the status and body */
  async function errorText(res) {
    const body = await res.text();
    try {
      const message = JSON.parse(body).error.message;
      if (message) return `error ${res.status}: ${message}`;
    } catch (_) {
      /* not the server's JSON error: show what came */
    }
    return `error ${res.status} ${res.statusText}${body ? ': ' + body : ''}`;
  }

  /* tokens/s from the server's usage.completion_tokens (sent at the end of a stream), or, for a
   * stream cut short, from the count of content chunks (each usually one token); timed from
   * sending the request to the end of the stream, so prompt processing is included */
  function showStats(div, tokens, source, seconds, stopped) {
    const stats = document.createElement('div');
    stats.className = 'stats';
    const rate = seconds > 0 ? tokens / seconds : 0;
    stats.dataset.tokens = tokens;
    stats.dataset.source = source;
    stats.dataset.seconds = seconds.toFixed(3);
    stats.textContent =
      `${rate.toFixed(1)} tokens/s: ${tokens} token${tokens === 1 ? '' : 's'} (${source}) in ${seconds.toFixed(2)} s` +
      (stopped ? ', stopped' : '');
    stats.title = 'timed from sending the request to the end of the stream';
    div.appendChild(stats);
  }

  async function send() {
    const text = $('input').value;
    if (!text.trim() || controller) return;
    showError('');
    const id = chatId;
    conversation.push({ role: 'user', content: text });
    const userDiv = addMessage('user', text);
    const reply = addMessage('assistant', '');
    reply.classList.add('streaming');
    $('input').value = '';
    controller = new AbortController();
    setBusy(true);
    let content = '';
    let chunks = 0;
    let usage = null;
    let started = false;
    let stopped = false;
    let failure = null;
    const t0 = performance.now();
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: requestHeaders(),
        body: JSON.stringify(requestBody()),
        signal: controller.signal,
      });
      if (!res.ok) throw new Error(await errorText(res));
      started = true;
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const sse = new SseParser();
      let done = false;
      for (;;) {
        const { value, done: eof } = await reader.read();
        const events = eof ? sse.finish(decoder.decode()) : sse.push(decoder.decode(value, { stream: true }));
        for (const data of events) {
          if (data === '[DONE]') {
            done = true;
            continue;
          }
          const event = JSON.parse(data);
          if (event.error) throw new Error(`error ${event.error.code || ''}: ${event.error.message}`);
          if (event.usage) usage = event.usage;
          const delta = event.choices && event.choices[0] && event.choices[0].delta;
          if (delta && delta.content) {
            content += delta.content;
            chunks++;
            setContent(reply, content);
          }
        }
        if (eof) break;
      }
      if (!done) throw new Error('the stream ended without [DONE]');
    } catch (e) {
      if (e.name === 'AbortError') stopped = true;
      else failure = e.message;
    }
    const seconds = (performance.now() - t0) / 1000;
    controller = null;
    setBusy(false);
    if (id !== chatId) return;
    reply.classList.remove('streaming');
    if (!started) {
      /* nothing was generated: take the turn back so it can be sent again */
      conversation.pop();
      userDiv.remove();
      reply.remove();
      if (!$('input').value) $('input').value = text;
      if (failure) showError(failure);
      return;
    }
    conversation.push({ role: 'assistant', content });
    if (usage && !stopped) showStats(reply, usage.completion_tokens, 'usage', seconds, false);
    else showStats(reply, chunks, 'chunks', seconds, stopped);
    if (failure) showError(failure);
  }

  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('stop').addEventListener('click', () => controller && controller.abort());
  $('new-chat').addEventListener('click', () => {
    chatId++;
    if (controller) controller.abort();
    conversation.length = 0;
    $('log').replaceChildren();
    showError('');
  });
  const showTemperature = () => ($('temperature-value').textContent = Number($('temperature').value).toFixed(2));
  $('temperature').addEventListener('input', showTemperature);
  showTemperature();
})();
