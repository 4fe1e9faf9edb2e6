// The status page (API.md "Status page") in a real browser: Debian's Chromium, headless, driven by
// npm puppeteer-core, against the pipeline fed by `jetstream-frames serve` (real relay frames) with
// the twin on. The page must load with no console error and no request outside its origin, show
// the figures and see them change, and its live tail must show only what a collection typed into
// it selects. A screenshot is saved as a test artifact (README "Status page").
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { binaries, buildDir, dictionaryPath, framesTool, httpGet, serveCapture, sharedDir, skipReasonFor, startPipeline } from './lib/pipeline.mjs';
import { waitFor } from './lib/util.mjs';

const CORPUS = path.join(sharedDir(), 'corpus', 'dev.frames');
const CHROMIUM = '/usr/bin/chromium';
const LIKES = 'app.bsky.feed.like';
// Where the screenshot goes: the build tree's test artifacts.
const ARTIFACTS = path.join(buildDir(), 'test-artifacts');

// ../shared or Chromium missing is a failure (scripts/install-deps.sh installs chromium).
const SKIP = skipReasonFor(['ws', 'puppeteer-core']);
if (SKIP) console.log(`# e2e skipped: ${SKIP}`);

test('status page: the corpus and Debian chromium are present', () => {
  for (const file of [CORPUS, dictionaryPath(), CHROMIUM]) assert.ok(fs.existsSync(file), `${file} is absent`);
});

describe('status page in Chromium (puppeteer-core): live figures, no outside request, a filtered tail', { skip: SKIP, timeout: 180_000 }, () => {
  const run = { consoleErrors: [], requests: [], notes: [] };
  const text = (id) => run.page.$eval(`#${id}`, (el) => el.textContent);

  before(async () => {
    run.work = fs.mkdtempSync(path.join(os.tmpdir(), 'jetstream-status-'));
    const capture = path.join(run.work, 'upstream.frames');
    execFileSync(framesTool(), ['repeat', CORPUS, capture, '--frames', '4000'], { stdio: 'ignore' });
    // 40 frames/s: the stream outlasts the test, so the figures keep moving.
    const upstream = await serveCapture(capture, { rate: 40 });
    run.serve = upstream.child;
    run.pipeline = await startPipeline({
      wsUrl: upstream.wsUrl,
      workDir: run.work,
      dictionary: dictionaryPath(),
      bin: binaries(),
      decodeArgs: ['--compact-collections', 'app.bsky.*'],
    });
    run.origin = run.pipeline.fanoutHttp;
    const { default: puppeteer } = await import('puppeteer-core');
    run.browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Loopback only: no DNS for any other name, and none of Chromium's own background traffic.
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
        '--no-default-browser-check', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--disable-default-apps', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
    });
    run.page = await run.browser.newPage();
    await run.page.setViewport({ width: 1280, height: 900 });
    run.page.on('console', (message) => {
      if (message.type() === 'error') run.consoleErrors.push(message.text());
    });
    run.page.on('pageerror', (error) => run.consoleErrors.push(`page error: ${error.message}`));
    run.page.on('request', (request) => run.requests.push(request.url()));
    run.page.on('requestfailed', (request) => run.consoleErrors.push(`request failed: ${request.url()}`));
    const response = await run.page.goto(`${run.origin}/status`, { waitUntil: 'load' });
    run.status = response.status();
    run.headers = response.headers();
  }, { timeout: 120_000 });

  after(async () => {
    await run.browser?.close();
    if (run.pipeline) await run.pipeline.stop();
    run.serve?.kill('SIGTERM');
    if (run.notes.length) console.log(`# notes:\n#   ${run.notes.join('\n#   ')}`);
    if (run.work && !process.env.JETSTREAM_E2E_KEEP) fs.rmSync(run.work, { recursive: true, force: true });
  });

  test('the page loads: 200, HTML, a content security policy that allows only its own origin', () => {
    assert.equal(run.status, 200);
    assert.match(run.headers['content-type'], /^text\/html/);
    assert.match(run.headers['content-security-policy'], /default-src 'none'/);
    assert.match(run.headers['content-security-policy'], /connect-src 'self'/);
  });

  test('the figures appear: upstream connected, rates, the log, the compacted records, this replica\'s clients', async () => {
    await waitFor(async () => (await text('upstream-connected')) === 'connected', { timeoutMs: 30_000, what: 'upstream connected on the page' });
    await waitFor(async () => !['–', '0'].includes(await text('rate-decode')), { timeoutMs: 30_000, what: 'a decode rate on the page' });
    for (const id of ['rate-frames', 'rate-fanout', 'log-oldest', 'log-newest', 'events-stored']) {
      assert.notEqual(await text(id), '–', `#${id} shows nothing`);
    }
    await waitFor(async () => Number((await text('state-records')).replace(/,/g, '')) > 0, { timeoutMs: 30_000, what: 'compacted records on the page' });
    const hidden = await run.page.$eval('#state-card', (el) => el.classList.contains('hidden'));
    assert.equal(hidden, false, 'the state card is shown with a twin');
    // The page's own tail is a client of this replica.
    await waitFor(async () => Number(await text('clients')) >= 1, { timeoutMs: 20_000, what: 'the tail counted as a client' });
    // /status.json says the same.
    const json = JSON.parse((await httpGet(`${run.origin}/status.json`)).text);
    assert.equal(json.upstream.connected, true);
    assert.ok(json.state.records > 0, JSON.stringify(json.state));
    assert.equal(json.state.collections, 'app.bsky.*');
    assert.equal(json.backfill, null, 'no backfill runs here');
    assert.ok(json.fanout.clients >= 1);
  });

  test('the figures change while the stream flows', async () => {
    const first = await text('events-stored');
    await waitFor(async () => (await text('events-stored')) !== first, { timeoutMs: 20_000, what: `#events-stored to move from ${first}` });
  });

  test('the live tail shows events, and only likes once a collection is typed into it', async () => {
    await waitFor(async () => (await run.page.$$('#tail tr.event')).length >= 5, { timeoutMs: 30_000, what: 'events in the tail' });
    await run.page.type('#tail-collection', LIKES);
    await waitFor(async () => (await text('tail-state')).includes(`wantedCollections=${LIKES}`) && (await text('tail-state')).startsWith('live'), {
      timeoutMs: 20_000,
      what: 'the tail reconnected with the filter',
    });
    await waitFor(async () => (await run.page.$$('#tail tr.event')).length >= 5, { timeoutMs: 60_000, what: 'likes in the tail' });
    const rows = await run.page.$$eval('#tail tr.event', (trs) => trs.map((tr) => ({ kind: tr.dataset.kind, collection: tr.dataset.collection })));
    const others = rows.filter((r) => r.kind === 'commit' && r.collection !== LIKES);
    assert.deepEqual(others, [], 'the filtered tail shows other collections');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    run.screenshot = path.join(ARTIFACTS, 'status-page.png');
    await run.page.screenshot({ path: run.screenshot, fullPage: true });
    console.log(`# screenshot: ${run.screenshot}`);
    assert.ok(fs.statSync(run.screenshot).size > 10_000);
  });

  test('Chromium\'s own WebSocket negotiates permessage-deflate and gets every event intact', async () => {
    const count = 300;
    // The same events from the oldest one, read by a node client without compression.
    const { openRaw } = await import('./lib/clients.mjs');
    const plain = await openRaw(`${run.pipeline.fanoutWs}/subscribe?cursor=1`);
    const seen = await run.page.evaluate(
      (url, n) =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(url);
          const messages = [];
          const timer = setTimeout(() => reject(new Error(`only ${messages.length} messages`)), 60_000);
          ws.onmessage = (m) => {
            messages.push(m.data);
            if (messages.length === n) {
              clearTimeout(timer);
              const extensions = ws.extensions;
              ws.close();
              resolve({ extensions, messages });
            }
          };
          ws.onerror = () => reject(new Error('websocket error'));
        }),
      `${run.pipeline.fanoutWs}/subscribe?cursor=1`,
      count,
    );
    await plain.waitForCount(count, 60_000, 'the plain client');
    plain.terminate();
    assert.match(seen.extensions, /^permessage-deflate/);
    assert.equal(seen.messages.length, count);
    assert.deepEqual(seen.messages, plain.texts().slice(0, count));
  });

  test('no console error, and every request stayed on the page\'s origin', () => {
    assert.deepEqual(run.consoleErrors, []);
    const origin = new URL(run.origin);
    const outside = run.requests.filter((u) => {
      const url = new URL(u);
      return url.host !== origin.host || !['http:', 'ws:'].includes(url.protocol);
    });
    assert.deepEqual(outside, []);
    assert.ok(run.requests.some((u) => u.endsWith('/status.json')), 'the page polled /status.json');
  });
});
