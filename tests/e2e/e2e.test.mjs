// End to end: a real PDS (@atproto/pds from npm, on loopback only) → jetstream-ingest →
// jetstream-decode → jetstream-fanout → real clients (raw `ws`, @skyware/jetstream,
// @atcute/jetstream), checked event by event against what the scenario wrote through XRPC.
//
//   node --test tests/e2e/            (or: ctest --preset ci -L e2e; bash tests/e2e/install.sh first)
//
// One scenario run feeds every test below (they only inspect what was collected), so the whole
// file takes 10–20 s. See README.md beside this file.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { binaries, buildDir, dictionaryPath, startPipeline, waitDecodeReady } from './lib/pipeline.mjs';
import { freePorts, listeningSockets, sleep, waitFor } from './lib/util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function skipReason() {
  if (!fs.existsSync(path.join(HERE, 'node_modules', '@atproto', 'pds', 'package.json'))) {
    return `npm packages not installed in ${path.join(HERE, 'node_modules')}: run bash tests/e2e/install.sh`;
  }
  const missing = Object.values(binaries()).filter((p) => !fs.existsSync(p));
  if (missing.length) return `not built: ${missing.join(', ')} (build the ci preset, or set JETSTREAM_E2E_BUILD_DIR)`;
  return false;  // ../shared missing is a failure, not a skip (the test below)
}

// CI always has ../shared beside the repository: without the v1 dictionary the zstd clients
// cannot be checked, and a skip would count as a pass.
test('e2e: the v1 zstd dictionary from ../shared is present', () => {
  assert.ok(
    fs.existsSync(dictionaryPath()),
    `${dictionaryPath()} is absent (../shared/zstd beside the repository, or JETSTREAM_ZSTD_DICTIONARY_PATH)`,
  );
});

const SKIP = skipReason();
if (SKIP) console.log(`# e2e skipped: ${SKIP}`);

// Filters of the library clients (the DIDs are filled in once the accounts exist).
const SKYWARE_COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.like'];
const ATCUTE_COLLECTIONS = ['app.bsky.graph.*', 'app.bsky.actor.profile'];

describe('e2e: real PDS → ingest → decode → fanout → real clients', { skip: SKIP, timeout: 240_000 }, () => {
  const run = { notes: [], timings: {} };
  let lib;

  // A wait that may time out without aborting the run: the test that depends on it reports it.
  async function soft(promise, label) {
    try {
      await promise;
    } catch (err) {
      run.notes.push(`${label}: ${err.message}`);
    }
  }
  const mark = (name) => {
    run.timings[name] = Date.now() - run.t0;
  };

  before(async () => {
    run.t0 = Date.now();
    lib = {
      ...(await import('./lib/pds.mjs')),
      ...(await import('./lib/firehose-tap.mjs')),
      ...(await import('./lib/scenario.mjs')),
      ...(await import('./lib/expect.mjs')),
      ...(await import('./lib/clients.mjs')),
    };
    run.work = fs.mkdtempSync(path.join(os.tmpdir(), 'jetstream-e2e-'));
    const [pdsPort, plcPort] = await freePorts(2);
    run.pds = await lib.startPds({ pdsPort, plcPort });
    mark('pds ready');
    run.tap = await lib.openTap(run.pds.firehose);
    run.pipeline = await startPipeline({
      wsUrl: run.pds.firehose,
      workDir: run.work,
      dictionary: dictionaryPath(),
      bin: binaries(buildDir()),
      // The state twin on: every v1 client below must see exactly v1 anyway.
      decodeArgs: ['--compact-collections', 'app.bsky.*'],
    });
    mark('pipeline ready');
    const ws = run.pipeline.fanoutWs;
    run.live = await lib.openRaw(`${ws}/subscribe`);
    run.liveZstd = await lib.openRaw(`${ws}/subscribe?compress=true`);
    // A browser's way (API.md "Browsers"): permessage-deflate, npm ws inflating.
    run.liveDeflate = await lib.openRaw(`${ws}/subscribe`, { deflate: true });

    const rec = new lib.Recorder(run.pds.url);
    const st = {};
    run.rec = rec;
    run.st = st;

    await lib.phases.accounts(rec, st);
    await soft(run.live.waitForCount(rec.expected.length, 20_000, 'live (accounts)'), 'live stream after the accounts');
    const first = run.live.texts()[0];
    run.firstTimeUs = first ? lib.splitTimeUs(first).timeUs : 1;
    mark('accounts');

    run.skywareFilter = { wantedCollections: SKYWARE_COLLECTIONS, wantedDids: [st.alice.did, st.bob.did] };
    run.atcuteFilter = { wantedCollections: ATCUTE_COLLECTIONS, wantedDids: [st.bob.did, st.carol.did] };
    run.skyware = await lib.startSkyware({ endpoint: `${ws}/subscribe`, cursor: run.firstTimeUs, ...run.skywareFilter });
    run.atcute = await lib.startAtcute({ url: ws, cursor: run.firstTimeUs, ...run.atcuteFilter });

    await lib.phases.content(rec, st);
    await soft(run.live.waitForCount(rec.expected.length, 20_000, 'live (content)'), 'live stream before the decode restart');
    mark('content');
    // A cursor from before the restart: the first event of the "likes, follows, repost" step.
    run.restartCutIndex = rec.expected.findIndex((e) => e.step === 'likes, follows, repost');
    const cutEvent = run.live.texts()[run.restartCutIndex];
    run.cursorBeforeRestart = cutEvent ? lib.splitTimeUs(cutEvent).timeUs : run.firstTimeUs;

    run.decodeKilled = await run.pipeline.services.decode.stop('SIGKILL');
    run.countBeforeRestart = run.live.count();
    await lib.phases.whileDecodeIsDown(rec, st);
    mark('actions while decode was down');
    run.pipeline.services.decode.start();
    await waitDecodeReady(run.pipeline);
    mark('decode restarted');

    await lib.phases.identityAndModeration(rec, st);
    mark('scenario done');

    const total = rec.expected.length;
    const filtered = (f) => rec.expected.filter((e) => lib.matchesFilter(e, f)).length;
    await Promise.all([
      soft(run.live.waitForCount(total, 30_000, 'live'), 'live stream'),
      soft(run.liveZstd.waitForCount(total, 30_000, 'live compressed'), 'live compressed stream'),
      soft(run.liveDeflate.waitForCount(total, 30_000, 'live permessage-deflate'), 'live permessage-deflate stream'),
      soft(
        waitFor(() => run.skyware.events.length >= filtered(run.skywareFilter), {
          timeoutMs: 30_000,
          what: () => `@skyware/jetstream: ${filtered(run.skywareFilter)} events (have ${run.skyware.events.length})`,
        }),
        '@skyware/jetstream',
      ),
      soft(
        waitFor(() => run.atcute.events.length >= filtered(run.atcuteFilter), {
          timeoutMs: 30_000,
          what: () => `@atcute/jetstream: ${filtered(run.atcuteFilter)} events (have ${run.atcute.events.length})`,
        }),
        '@atcute/jetstream',
      ),
      soft(
        waitFor(() => lib.firehoseEffects(run.tap.frames).length >= total, {
          timeoutMs: 10_000,
          what: 'the PDS firehose tap',
        }),
        'PDS firehose tap',
      ),
    ]);
    mark('live delivered');
    await sleep(1000); // anything extra (a duplicate) would arrive now

    run.reconciled = lib.reconcile(rec.expected, run.tap.frames);
    run.templates = run.reconciled.events.map((e) => e.template);

    // Connections opened after the scenario: replay from a cursor.
    run.replayFirst = await lib.openRaw(`${ws}/subscribe?cursor=${run.firstTimeUs}`);
    run.replayZero = await lib.openRaw(`${ws}/subscribe?cursor=0`);
    run.replayAcrossRestart = await lib.openRaw(`${ws}/subscribe?cursor=${run.cursorBeforeRestart}`);
    run.replayZstd = await lib.openRaw(`${ws}/subscribe?cursor=${run.firstTimeUs}`, {
      headers: { 'Socket-Encoding': 'zstd' },
    });
    run.replayDeflate = await lib.openRaw(`${ws}/subscribe?cursor=${run.firstTimeUs}`, { deflate: true });
    // requireHello + an options_update that ws sends compressed (threshold 0: every message).
    run.deflateHello = await lib.openRaw(`${ws}/subscribe?cursor=${run.firstTimeUs}&requireHello=true`, { deflate: true });
    run.deflateHello.ws.send(JSON.stringify({
      type: 'options_update',
      payload: { wantedCollections: ['app.bsky.feed.post'], wantedDids: [] },
    }));
    run.deflateHelloExpected = rec.expected.filter((e) => lib.matchesFilter(e, { wantedCollections: ['app.bsky.feed.post'] })).length;
    const acrossCount = total - run.restartCutIndex;
    await Promise.all([
      soft(run.replayFirst.waitForCount(total, 20_000, 'replay from the first cursor'), 'replay (cursor = first event)'),
      soft(run.replayZero.waitForCount(total, 20_000, 'replay cursor=0'), 'replay (cursor=0)'),
      soft(run.replayAcrossRestart.waitForCount(acrossCount, 20_000, 'replay across the restart'), 'replay across the decode restart'),
      soft(run.replayZstd.waitForCount(total, 20_000, 'compressed replay'), 'compressed replay'),
      soft(run.replayDeflate.waitForCount(total, 20_000, 'permessage-deflate replay'), 'permessage-deflate replay'),
      soft(run.deflateHello.waitForCount(run.deflateHelloExpected, 20_000, 'permessage-deflate options_update'), 'permessage-deflate options_update'),
    ]);
    // State: a ws client asking for snapshot=true after everything happened.
    run.snapshot = await lib.openRaw(`${ws}/subscribe?snapshot=true`);
    await soft(
      waitFor(() => run.snapshot.texts().some((t) => t.includes('"name":"SnapshotComplete"')), {
        timeoutMs: 20_000,
        what: 'SnapshotComplete on the snapshot=true connection',
      }),
      'snapshot=true',
    );
    await sleep(1000);
    mark('replays delivered');
    run.zstd = await lib.zstdDecoder(dictionaryPath());
    run.pdsListeners = listeningSockets(run.pds.child.pid);
  }, { timeout: 200_000 });

  after(async () => {
    for (const c of [run.live, run.liveZstd, run.liveDeflate, run.replayFirst, run.replayZero, run.replayAcrossRestart, run.replayZstd, run.replayDeflate, run.deflateHello, run.snapshot]) {
      c?.terminate();
    }
    run.skyware?.stop();
    await run.atcute?.stop();
    run.tap?.close();
    if (run.pipeline) run.stopped = await run.pipeline.stop();
    if (run.pds) run.pdsStopped = await run.pds.stop();
    mark('stopped');
    console.log(`# e2e timings (ms since start): ${JSON.stringify(run.timings)}`);
    console.log(`# e2e counts: ${JSON.stringify({
      expected: run.rec?.expected.length,
      live: run.live?.count(),
      liveBeforeDecodeKill: run.countBeforeRestart,
      liveCompressed: run.liveZstd?.count(),
      liveDeflate: run.liveDeflate?.count(),
      replayDeflate: run.replayDeflate?.count(),
      deflateHello: run.deflateHello?.count(),
      skyware: run.skyware?.events.length,
      atcute: run.atcute?.events.length,
      replayFirst: run.replayFirst?.count(),
      replayZero: run.replayZero?.count(),
      replayAcrossRestart: run.replayAcrossRestart?.count(),
      replayCompressed: run.replayZstd?.count(),
      zstd: run.zstd?.kind,
      stopped: run.stopped,
    })}`);
    if (run.notes.length) console.log(`# e2e waits that timed out:\n#   ${run.notes.join('\n#   ')}`);
    if (run.work && !process.env.JETSTREAM_E2E_KEEP) fs.rmSync(run.work, { recursive: true, force: true });
    else if (run.work) console.log(`# e2e work folder kept: ${run.work}`);
  });

  const fail = (problems, extra = '') => {
    if (problems.length === 0) return;
    const notes = run.notes.length ? `\nwaits that timed out:\n  ${run.notes.join('\n  ')}` : '';
    assert.fail(`${problems.join('\n')}${notes}${extra ? `\n${extra}` : ''}`);
  };
  const logs = () => run.pipeline?.tails(25) ?? '';

  test('the PDS and the PLC listen on 127.0.0.1 only and made no outside connection or DNS query', () => {
    assert.ok(run.pdsListeners.length >= 2, `expected the PDS and PLC listeners, found ${JSON.stringify(run.pdsListeners)}`);
    for (const l of run.pdsListeners) assert.equal(l.address, '127.0.0.1', `listener ${JSON.stringify(l)}`);
    assert.deepEqual(run.pds.guardViolations(), []);
  });

  test('the PDS firehose carries exactly the recorded actions (kind, did, op, collection, rkey, rev, cid)', () => {
    assert.deepEqual(run.tap.errors, []);
    fail(run.reconciled.problems);
    assert.equal(run.reconciled.events.length, run.rec.expected.length);
    const kinds = (k) => run.reconciled.events.filter((e) => e.kind === k).length;
    assert.ok(kinds('identity') >= 5 && kinds('account') >= 7 && kinds('commit') >= 20, 'scenario covers every kind');
  });

  test('live: a raw client gets one event per action, byte for byte, in the PDS order, across the decode restart', () => {
    assert.equal(run.decodeKilled?.signal, 'SIGKILL', 'decode was killed in the middle of the scenario');
    assert.ok(run.countBeforeRestart > 0 && run.countBeforeRestart < run.rec.expected.length);
    assert.equal(run.live.messages.filter((m) => m.binary).length, 0, 'no binary message on an uncompressed stream');
    assert.equal(run.live.close, null, `the live connection stayed open (closed: ${JSON.stringify(run.live.close)})`);
    fail(lib.compareStream(run.live.texts(), run.templates, { label: 'live' }), logs());
  });

  test('@skyware/jetstream with collection and DID filters gets exactly the matching events', () => {
    const live = run.live.texts().map((t) => JSON.parse(t));
    const want = live.filter((e) => lib.matchesFilter(flat(e), run.skywareFilter));
    const url = run.skyware.url();
    assert.match(url, /wantedCollections=app\.bsky\.feed\.post/);
    assert.match(url, /wantedDids=did%3Aplc%3A/);
    assert.deepEqual(run.skyware.errors, []);
    assert.ok(want.length > 10 && want.length < live.length, `a real filter (${want.length} of ${live.length})`);
    assert.deepEqual(run.skyware.events, want);
    assert.equal(run.skyware.opened(), 1, 'one connection, no reconnect');
  });

  test('@atcute/jetstream with a collection prefix and DID filter (requireHello + options_update) gets exactly the matching events', () => {
    const live = run.live.texts().map((t) => JSON.parse(t));
    const want = live.filter((e) => lib.matchesFilter(flat(e), run.atcuteFilter));
    assert.deepEqual(run.atcute.errors, [], 'no event failed @atcute/jetstream validation');
    assert.ok(want.length > 5 && want.length < live.length, `a real filter (${want.length} of ${live.length})`);
    assert.deepEqual(run.atcute.events, want);
    assert.equal(run.atcute.opened(), 1, 'one connection, no reconnect');
  });

  test('replay: a client connecting afterwards with a cursor gets exactly the same events, byte-identical', () => {
    fail(sameBytes(run.replayFirst.texts(), run.live.texts(), `replay ?cursor=${run.firstTimeUs}`));
    fail(sameBytes(run.replayZero.texts(), run.live.texts(), 'replay ?cursor=0'));
  });

  test('decode restart: a connection opened afterwards with a cursor from before the restart gets nothing lost, nothing duplicated', () => {
    const want = run.live.texts().slice(run.restartCutIndex);
    assert.ok(run.restartCutIndex > 0 && want.length > 10, 'the cursor is well before the restart');
    fail(lib.compareStream(run.replayAcrossRestart.texts(), run.templates.slice(run.restartCutIndex), { label: 'after restart' }), logs());
    fail(sameBytes(run.replayAcrossRestart.texts(), want, `replay ?cursor=${run.cursorBeforeRestart}`));
    const ids = run.replayAcrossRestart.texts().map((t) => lib.splitTimeUs(t).timeUs);
    assert.equal(new Set(ids).size, ids.length, 'no time_us twice');
  });

  test('compressed stream (compress=true live, Socket-Encoding: zstd replay) decodes with the v1 dictionary to the same events', () => {
    for (const [client, label] of [[run.liveZstd, 'live compress=true'], [run.replayZstd, 'replay Socket-Encoding: zstd']]) {
      assert.equal(client.messages.filter((m) => !m.binary).length, 0, `${label}: every message is binary`);
      const decoded = client.messages.map((m) => run.zstd.decode(m.data));
      fail(sameBytes(decoded, run.live.texts(), `${label} (decoded with ${run.zstd.kind})`));
    }
  });

  test('permessage-deflate (npm ws, as a browser offers it): live and replay get exactly the text events; a compressed options_update filters', () => {
    const problems = [];
    for (const [client, label] of [[run.liveDeflate, 'live'], [run.replayDeflate, 'replay'], [run.deflateHello, 'options_update']]) {
      if (!String(client.extensions).startsWith('permessage-deflate')) problems.push(`${label}: extensions ${JSON.stringify(client.extensions)}`);
      if (client.messages.some((m) => m.binary)) problems.push(`${label}: a binary message`);
    }
    problems.push(...sameBytes(run.liveDeflate.texts(), run.live.texts(), 'live permessage-deflate'));
    problems.push(...sameBytes(run.replayDeflate.texts(), run.replayFirst.texts(), 'replay permessage-deflate'));
    // v1's filter: collections filter commits only; identity and account events pass.
    const posts = run.replayFirst.texts().filter((t) => {
      const e = JSON.parse(t);
      return e.kind !== 'commit' || e.commit.collection === 'app.bsky.feed.post';
    });
    if (!posts.some((t) => t.includes('"collection":"app.bsky.feed.post"'))) problems.push('the scenario made no post');
    problems.push(...sameBytes(run.deflateHello.texts(), posts, 'options_update sent compressed'));
    fail(problems, logs());
  });

  test('snapshot=true: a ws client folding the stream holds exactly the records the PDS holds (app.bsky.*)', async () => {
    const problems = [];
    const { records, completes } = foldRecords(run.snapshot?.texts() ?? []);
    if (completes !== 1) problems.push(`SnapshotComplete ${completes} times, want once`);
    const dids = [...new Set(run.rec.expected.filter((e) => e.kind === 'commit').map((e) => e.did))];
    const want = await pdsRecords(lib.xrpc, run.pds.url, dids);
    if (want.size === 0) problems.push('the PDS holds no app.bsky.* record: the scenario did not run');
    for (const [key, cid] of want) {
      if (!records.has(key)) problems.push(`missing from the snapshot: ${key}`);
      else if (records.get(key) !== cid) problems.push(`${key}: cid ${records.get(key)}, the PDS has ${cid}`);
    }
    for (const key of records.keys()) if (!want.has(key)) problems.push(`not in the PDS: ${key}`);
    fail(problems, logs());
  });
});

// The records a snapshot=true client holds once it folded the stream: creates and updates set a
// record, deletes remove it (by did, collection, rkey), until SnapshotComplete and after.
function foldRecords(texts) {
  const records = new Map();
  let completes = 0;
  for (const text of texts) {
    const e = JSON.parse(text);
    if (e.kind === 'info') {
      if (e.info.name === 'SnapshotComplete') completes += 1;
      continue;
    }
    if (e.kind !== 'commit') continue;
    const key = `${e.did}/${e.commit.collection}/${e.commit.rkey}`;
    if (e.commit.operation === 'delete') records.delete(key);
    else records.set(key, e.commit.cid);
  }
  return { records, completes };
}

// What the PDS itself says its repositories hold in app.bsky.* (describeRepo, listRecords).
async function pdsRecords(xrpc, pdsUrl, dids) {
  const records = new Map();
  for (const did of dids) {
    const repo = await xrpc(pdsUrl, 'com.atproto.repo.describeRepo', { method: 'GET', query: { repo: did } });
    for (const collection of repo.collections.filter((c) => c.startsWith('app.bsky.'))) {
      let cursor;
      do {
        const page = await xrpc(pdsUrl, 'com.atproto.repo.listRecords', {
          method: 'GET',
          query: { repo: did, collection, limit: 100, ...(cursor ? { cursor } : {}) },
        });
        for (const r of page.records) records.set(r.uri.replace('at://', ''), r.cid);
        cursor = page.cursor;
      } while (cursor);
    }
  }
  return records;
}

// flat(event) -> {kind, did, collection} for matchesFilter.
function flat(e) {
  return { kind: e.kind, did: e.did, collection: e.commit?.collection };
}

function sameBytes(got, want, label) {
  const problems = [];
  for (let i = 0; i < Math.max(got.length, want.length) && problems.length < 5; i++) {
    if (got[i] !== want[i]) problems.push(`${label} #${i}:\n    expected ${want[i] ?? '(no more events)'}\n    received ${got[i] ?? '(nothing)'}`);
  }
  if (got.length !== want.length) problems.push(`${label}: ${got.length} events, expected ${want.length}`);
  return problems;
}

