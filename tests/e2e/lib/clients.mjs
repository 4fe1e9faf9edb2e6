// The clients of the test: a raw websocket (package `ws`) that keeps every message exactly as
// received, zstd decoding of compressed streams with the v1 dictionary, and the two real Jetstream
// client libraries (@skyware/jetstream, @atcute/jetstream) wrapped so that each can be stopped.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import WebSocket from 'ws';
import { waitFor } from './util.mjs';

// openRaw(url): connects and records {data: string|Buffer, binary} per message, in order.
// `deflate`: offer permessage-deflate as browsers do (ws compresses every message it sends, and
// inflates what it receives); `client.extensions` is what the server agreed to.
export async function openRaw(url, { timeoutMs = 10_000, headers, deflate = false } = {}) {
  const client = {
    url,
    messages: [],
    errors: [],
    close: null,
    unexpectedResponse: null,
  };
  const ws = new WebSocket(url, { headers, perMessageDeflate: deflate ? { threshold: 0 } : false });
  ws.on('message', (data, isBinary) => {
    client.messages.push(isBinary ? { data: Buffer.from(data), binary: true } : { data: data.toString('utf8'), binary: false });
  });
  ws.on('error', (err) => client.errors.push(String(err?.message ?? err)));
  ws.on('close', (code, reason) => {
    client.close = { code, reason: reason.toString() };
  });
  ws.on('unexpected-response', (_req, res) => {
    let body = '';
    res.on('data', (c) => {
      body += c;
    });
    res.on('end', () => {
      client.unexpectedResponse = { status: res.statusCode, body };
    });
  });
  await waitFor(() => ws.readyState === WebSocket.OPEN || client.close || client.unexpectedResponse || client.errors.length, {
    timeoutMs,
    what: `websocket open: ${url}`,
  });
  if (ws.readyState !== WebSocket.OPEN) {
    throw new Error(`websocket ${url} did not open: ${JSON.stringify({ errors: client.errors, close: client.close, response: client.unexpectedResponse })}`);
  }
  client.ws = ws;
  client.extensions = ws.extensions;
  client.texts = () => client.messages.filter((m) => !m.binary).map((m) => m.data);
  client.count = () => client.messages.length;
  client.waitForCount = (n, ms = 20_000, what = url) =>
    waitFor(() => client.messages.length >= n, {
      timeoutMs: ms,
      what: () => `${n} messages on ${what} (have ${client.messages.length})`,
    });
  client.terminate = () => ws.terminate();
  return client;
}

// A zstd decoder that knows the v1 dictionary: @bokuweb/zstd-wasm (decompressUsingDict), or the
// `zstd` command line (`zstd -d -D dict`) if the wasm module cannot be loaded.
export async function zstdDecoder(dictionaryPath) {
  const dict = fs.readFileSync(dictionaryPath);
  try {
    const zstd = await import('@bokuweb/zstd-wasm');
    await zstd.init();
    const dctx = zstd.createDCtx();
    return {
      kind: '@bokuweb/zstd-wasm',
      decode: (buf) => Buffer.from(zstd.decompressUsingDict(dctx, new Uint8Array(buf), dict)).toString('utf8'),
    };
  } catch (err) {
    return {
      kind: `zstd CLI (wasm unavailable: ${err?.message ?? err})`,
      decode: (buf) => {
        const out = spawnSync('zstd', ['-d', '-q', '-c', '-D', dictionaryPath], { input: buf, timeout: 10_000 });
        if (out.status !== 0) throw new Error(`zstd -d failed: ${out.stderr}`);
        return out.stdout.toString('utf8');
      },
    };
  }
}

// Each library client collects plain event objects and can be stopped; `opened` counts
// connections (more than one means the library had to reconnect).
export async function startSkyware({ endpoint, cursor, wantedCollections, wantedDids }) {
  const { Jetstream } = await import('@skyware/jetstream');
  const events = [];
  const errors = [];
  let opened = 0;
  const js = new Jetstream({ ws: WebSocket, endpoint, cursor, wantedCollections, wantedDids });
  js.on('open', () => {
    opened += 1;
  });
  js.on('commit', (e) => events.push(e));
  js.on('identity', (e) => events.push(e));
  js.on('account', (e) => events.push(e));
  js.on('error', (err) => errors.push(String(err?.message ?? err)));
  js.start();
  await waitFor(() => opened > 0, { timeoutMs: 10_000, what: '@skyware/jetstream to connect' });
  return {
    events,
    errors,
    opened: () => opened,
    url: () => js.url.toString(),
    stop: () => js.close(),
  };
}

export async function startAtcute({ url, cursor, wantedCollections, wantedDids }) {
  const { JetstreamSubscription } = await import('@atcute/jetstream');
  const events = [];
  const errors = [];
  let opened = 0;
  const sub = new JetstreamSubscription({
    url,
    cursor,
    wantedCollections,
    wantedDids,
    ws: { WebSocket },
    onConnectionOpen: () => {
      opened += 1;
    },
    onError: (err) => errors.push(String(err?.message ?? err)),
  });
  const iterator = sub[Symbol.asyncIterator]();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const { value, done } = await iterator.next();
      if (done) break;
      events.push(value);
    }
  })().catch((err) => errors.push(String(err?.message ?? err)));
  await waitFor(() => opened > 0, { timeoutMs: 10_000, what: '@atcute/jetstream to connect' });
  return {
    events,
    errors,
    opened: () => opened,
    stop: async () => {
      stopped = true;
      await iterator.return?.();
      await Promise.race([loop, new Promise((r) => setTimeout(r, 1000))]);
    },
  };
}

// A client written the way the Jetstream docs tell users to: npm `ws`, and on any close it
// reconnects after a short pause with `cursor` = the last time_us it got + 1 (the cursor is
// inclusive), so it never asks for an event twice. Keeps every event's time_us (and its text when
// `keepTexts`), the close codes it saw and how many connections it opened.
export function startReconnectingWs({ url, cursor = 1, keepTexts = false }) {
  const client = { timeUs: [], texts: [], closes: [], opened: 0, errors: [], stopped: false };
  let last = cursor - 1;
  let ws = null;
  const connect = () => {
    if (client.stopped) return;
    const target = new URL(url);
    target.searchParams.set('cursor', String(last + 1));
    ws = new WebSocket(target.toString(), { perMessageDeflate: false });
    ws.on('open', () => {
      client.opened += 1;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const text = data.toString('utf8');
      const m = /"time_us":(\d+)/.exec(text);
      if (!m) return;
      const timeUs = Number(m[1]);
      client.timeUs.push(timeUs);
      if (keepTexts) client.texts.push(text);
      if (timeUs > last) last = timeUs;
    });
    ws.on('error', (err) => client.errors.push(String(err?.message ?? err)));
    ws.on('close', (code) => {
      client.closes.push(code);
      if (!client.stopped) setTimeout(connect, 200 + Math.floor(Math.random() * 300));
    });
  };
  connect();
  client.stop = () => {
    client.stopped = true;
    ws?.terminate();
  };
  return client;
}
