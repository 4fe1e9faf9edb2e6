// Backfill end to end (API.md "Backfill"): two real PDSes (@atproto/pds) sharing one real PLC
// directory (@did-plc/server), accounts and records made BEFORE the pipeline starts; ingest then
// follows PDS A live only, jetstream-backfill lists both PDSes and fetches every repository, and
// a `snapshot=true&cursor=0` client (npm `ws`) folds what it receives into state that must equal
// each PDS's listRecords for every account — through live creates, updates and deletes made
// during and after the backfill, kill -9 of backfill and of decode in the middle, and an account
// deactivated and activated again (decode asks backfill to fetch it again).
//
// PDS B has no live stream here (ingest follows one upstream, as it follows one relay in
// production): its state is what backfill fetched, and it does not change during the test.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { binaries, buildDir, dictionaryPath, httpGet, metricValue, startPipeline, waitDecodeReady } from './lib/pipeline.mjs';
import { freePorts, waitFor } from './lib/util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const COMPACTED = ['app.bsky.feed.post', 'app.bsky.feed.like'];

function skipReason() {
  if (!fs.existsSync(path.join(HERE, 'node_modules', '@atproto', 'pds', 'package.json'))) {
    return `npm packages not installed in ${path.join(HERE, 'node_modules')}: run bash tests/e2e/install.sh`;
  }
  const missing = Object.values(binaries()).filter((p) => !fs.existsSync(p));
  if (missing.length) return `not built: ${missing.join(', ')} (build the ci preset, or set JETSTREAM_E2E_BUILD_DIR)`;
  return false;
}
const SKIP = skipReason();
if (SKIP) console.log(`# e2e skipped: ${SKIP}`);

// The state a snapshot client holds: at://did/collection/rkey → cid, folded from v1 events.
class StateClient {
  constructor(raw) {
    this.raw = raw;
    this.seen = 0;
    this.state = new Map();
    this.lastTimeUs = 0;
    this.complete = false;
    this.backfillCreates = 0;
  }

  fold() {
    const texts = this.raw.texts();
    for (; this.seen < texts.length; ++this.seen) {
      const event = JSON.parse(texts[this.seen]);
      if (event.kind === 'info') {
        if (event.info?.name === 'SnapshotComplete') this.complete = true;
        if (event.info?.name === 'SnapshotRestarted') this.state.clear();
        continue;
      }
      assert.ok(event.time_us > this.lastTimeUs, `time_us increases: ${event.time_us} after ${this.lastTimeUs}`);
      this.lastTimeUs = event.time_us;
      if (event.kind !== 'commit') continue;
      const { collection, rkey, operation, cid } = event.commit;
      const key = `at://${event.did}/${collection}/${rkey}`;
      if (operation === 'delete') {
        this.state.delete(key);
      } else {
        this.state.set(key, cid);
      }
    }
    return this.state;
  }
}

describe('e2e: backfill from two real PDSes into snapshot=true state', { skip: SKIP, timeout: 420_000 }, () => {
  const run = {};
  let lib;

  async function listAll(pds, did, collection) {
    const out = new Map();
    let cursor;
    for (;;) {
      const page = await lib.xrpc(pds.url, 'com.atproto.repo.listRecords', {
        method: 'GET',
        query: { repo: did, collection, limit: 100, ...(cursor ? { cursor } : {}) },
      });
      for (const record of page.records) out.set(record.uri, record.cid);
      if (!page.cursor || page.records.length === 0) return out;
      cursor = page.cursor;
    }
  }

  async function truth() {
    const expected = new Map();
    for (const { pds, account } of run.accounts) {
      for (const collection of COMPACTED) {
        for (const [uri, cid] of await listAll(pds, account.did, collection)) expected.set(uri, cid);
      }
    }
    return expected;
  }

  const diff = (got, want) => {
    const missing = [...want].filter(([k, v]) => got.get(k) !== v).map(([k]) => k);
    const extra = [...got.keys()].filter((k) => !want.has(k));
    return { missing: missing.slice(0, 10), extra: extra.slice(0, 10), got: got.size, want: want.size };
  };

  async function stateEquals(client, what, timeoutMs = 90_000) {
    let last = null;
    await waitFor(
      async () => {
        const want = await truth();
        last = diff(client.fold(), want);
        return last.missing.length === 0 && last.extra.length === 0;
      },
      { timeoutMs, intervalMs: 250, what: () => `${what}: state equals listRecords ${JSON.stringify(last)}\n${run.pipeline.tails(15)}` },
    );
  }

  async function createAccount(pds, name) {
    const out = await lib.xrpc(pds.url, 'com.atproto.server.createAccount', {
      body: { handle: `${name}.test`, email: `${name}@example.test`, password: `${name}-password` },
    });
    return { name, did: out.did, accessJwt: out.accessJwt };
  }
  const post = (pds, account, text) =>
    lib.xrpc(pds.url, 'com.atproto.repo.createRecord', {
      auth: lib.bearer(account),
      body: { repo: account.did, collection: 'app.bsky.feed.post', record: { $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString() } },
    });
  const like = (pds, account, subject) =>
    lib.xrpc(pds.url, 'com.atproto.repo.createRecord', {
      auth: lib.bearer(account),
      body: { repo: account.did, collection: 'app.bsky.feed.like', record: { $type: 'app.bsky.feed.like', subject: { uri: subject.uri, cid: subject.cid }, createdAt: new Date().toISOString() } },
    });
  const follow = (pds, account, did) =>
    lib.xrpc(pds.url, 'com.atproto.repo.createRecord', {
      auth: lib.bearer(account),
      body: { repo: account.did, collection: 'app.bsky.graph.follow', record: { $type: 'app.bsky.graph.follow', subject: did, createdAt: new Date().toISOString() } },
    });
  const update = (pds, account, ref, text) =>
    lib.xrpc(pds.url, 'com.atproto.repo.putRecord', {
      auth: lib.bearer(account),
      body: { repo: account.did, collection: 'app.bsky.feed.post', rkey: ref.uri.split('/').pop(), record: { $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString() } },
    });
  const remove = (pds, account, ref) =>
    lib.xrpc(pds.url, 'com.atproto.repo.deleteRecord', {
      auth: lib.bearer(account),
      body: { repo: account.did, collection: ref.uri.split('/')[3], rkey: ref.uri.split('/').pop() },
    });

  const done = () => metricValue(run.pipeline.metrics.backfill, 'jetstream_backfill_repos{state="done"}');

  before(async () => {
    lib = { ...(await import('./lib/pds.mjs')), ...(await import('./lib/clients.mjs')) };
    run.work = fs.mkdtempSync(path.join(os.tmpdir(), 'jetstream-e2e-backfill-'));
    const [pdsA, pdsB, plc] = await freePorts(3);
    run.a = await lib.startPds({ pdsPort: pdsA, plcPort: plc });
    run.b = await lib.startPds({ pdsPort: pdsB, plcPort: plc, externalPlc: true });

    // Before the service exists: accounts, records, and records already deleted.
    run.accounts = [];
    run.posts = {};
    for (const [pds, names] of [[run.a, ['ann', 'abe', 'amy']], [run.b, ['bea', 'bob']]]) {
      for (const name of names) {
        const account = await createAccount(pds, name);
        run.accounts.push({ pds, account });
        run.posts[name] = [];
        for (let i = 0; i < 6; ++i) run.posts[name].push(await post(pds, account, `${name} before ${i}`));
        await remove(pds, account, run.posts[name].shift());  // gone before the service started
      }
    }
    const byName = Object.fromEntries(run.accounts.map(({ pds, account }) => [account.name, { pds, account }]));
    run.byName = byName;
    await like(run.a, byName.ann.account, run.posts.bea[0]);
    await like(run.b, byName.bob.account, run.posts.ann[0]);
    await follow(run.a, byName.abe.account, byName.bob.account.did);  // not compacted

    run.pipeline = await startPipeline({
      wsUrl: run.a.firehose,
      workDir: run.work,
      dictionary: dictionaryPath(),
      bin: binaries(buildDir()),
      decodeArgs: ['--compact-collections', 'app.bsky.feed.*'],
      // Slow on purpose (a request every 2 s per host) so that the kills land mid-way.
      backfillArgs: [
        '--pds', `${run.a.url.replace('127.0.0.1', 'localhost')},${run.b.url.replace('127.0.0.1', 'localhost')}`,
        '--plc-url', `http://localhost:${plc}`,
        '--host-request-rate', '0.5', '--max-fetches-per-host', '1', '--progress-interval', '1s',
        '--ack-timeout', '2s',
      ],
    });
    await waitFor(async () => (await lib.openRaw(`${run.pipeline.fanoutWs}/subscribe?snapshot=true`).then((c) => { c.terminate(); return true; }, () => false)), {
      timeoutMs: 30_000, intervalMs: 250, what: 'fanout to accept snapshot=true (decode state info)',
    });
  });

  after(async () => {
    run.client?.raw.terminate();
    run.fresh?.raw.terminate();
    await run.pipeline?.stop();
    await run.a?.stop();
    await run.b?.stop();
    if (run.work && !process.env.JETSTREAM_E2E_KEEP) fs.rmSync(run.work, { recursive: true, force: true });
    else if (run.work) console.log(`# kept ${run.work}`);
  });

  test('the state equals both PDSes through live changes and kill -9 of backfill and decode', async () => {
    const { ann, abe, amy } = run.byName;
    run.client = new StateClient(await lib.openRaw(`${run.pipeline.fanoutWs}/subscribe?snapshot=true&cursor=0`));
    // Live, before backfill runs: a post, an update of a post made before the start, a delete.
    await post(run.a, ann.account, 'ann live 1');
    await update(run.a, abe.account, run.posts.abe[0], 'abe updated live');
    await remove(run.a, amy.account, run.posts.amy[1]);

    run.pipeline.backfill.start();
    await waitFor(async () => (await done()) >= 1, { timeoutMs: 60_000, intervalMs: 100, what: 'a first repository backfilled' });
    await run.pipeline.backfill.stop('SIGKILL');
    // Live while backfill is down.
    await post(run.a, amy.account, 'amy live while backfill is down');
    await remove(run.a, ann.account, run.posts.ann[2]);
    run.pipeline.backfill.start();
    await waitFor(async () => (await done()) >= 1, { timeoutMs: 60_000, intervalMs: 100, what: 'backfill back' });

    // decode killed in the middle of the rest.
    await run.pipeline.services.decode.stop('SIGKILL');
    await update(run.a, ann.account, run.posts.ann[3], 'ann updated while decode is down');
    run.pipeline.services.decode.start();
    await waitDecodeReady(run.pipeline, 60_000);

    await waitFor(async () => (await done()) === 5, { timeoutMs: 120_000, intervalMs: 250, what: () => `every repository backfilled\n${run.pipeline.tails(20)}` });
    await stateEquals(run.client, 'after the backfill');
    // fanout's status page shows backfill's progress, which came through decode (proto §3.13, §3.6c).
    let status = null;
    await waitFor(async () => {
      const { status: code, text } = await httpGet(`${run.pipeline.fanoutHttp}/status.json`);
      status = code === 200 ? JSON.parse(text) : null;
      return status?.backfill?.repos_done === 5;
    }, { timeoutMs: 30_000, intervalMs: 250, what: () => `/status.json to show 5 repositories backfilled: ${JSON.stringify(status?.backfill)}` });
    assert.equal(status.backfill.repos_total, 5);
    assert.ok(status.backfill.records_applied > 0);
    assert.ok(status.state.records > 0);

    // After: more live changes, which the state follows.
    await post(run.a, abe.account, 'abe after');
    await like(run.a, amy.account, run.posts.bob[0]);
    await remove(run.a, abe.account, run.posts.abe[4]);
    await update(run.a, amy.account, run.posts.amy[2], 'amy updated after');
    await stateEquals(run.client, 'after live changes');
    assert.ok(run.client.complete, 'SnapshotComplete arrived');

    // An account deactivated and activated again: decode asks backfill to fetch it again.
    const fetched = () => metricValue(run.pipeline.metrics.backfill, 'jetstream_backfill_fetches_total{outcome="done"}');
    const before = await fetched();
    await lib.xrpc(run.a.url, 'com.atproto.server.deactivateAccount', { auth: lib.bearer(abe.account), body: {} });
    await lib.xrpc(run.a.url, 'com.atproto.server.activateAccount', { auth: lib.bearer(abe.account) });
    await waitFor(async () => (await fetched()) > before, {
      timeoutMs: 60_000, intervalMs: 250, what: () => `a fetch after the account came back\n${run.pipeline.tails(20)}`,
    });
    await stateEquals(run.client, 'after the account came back');

    // A client that connects now from 0 gets the same state from the twin alone.
    run.fresh = new StateClient(await lib.openRaw(`${run.pipeline.fanoutWs}/subscribe?snapshot=true&cursor=0`));
    await stateEquals(run.fresh, 'a new snapshot client');
  });

  test('a v1 client sees no backfilled record', async () => {
    const v1 = await lib.openRaw(`${run.pipeline.fanoutWs}/subscribe?cursor=1`);
    // A post made now arrives after the whole replay: then every event of the log has been seen.
    const marker = await post(run.a, run.byName.ann.account, 'v1 marker');
    await waitFor(() => v1.texts().some((t) => t.includes(marker.cid)), {
      timeoutMs: 30_000, intervalMs: 50, what: 'the v1 client to reach the live marker post',
    });
    v1.terminate();
    const creates = v1.texts().map((t) => JSON.parse(t)).filter((e) => e.kind === 'commit');
    // Every commit a v1 replay carries came from PDS A's live stream, none from PDS B's repositories.
    const bDids = new Set(run.accounts.filter(({ pds }) => pds === run.b).map(({ account }) => account.did));
    assert.equal(creates.filter((e) => bDids.has(e.did)).length, 0, 'no record of a backfilled-only repository');
    assert.equal(
      creates.filter((e) => e.commit.operation === 'create' && /before/.test(e.commit.record?.text ?? '')).length,
      0,
      'no record made before the service started (only backfill knows them)',
    );
    assert.ok(creates.length > 0, 'the live commits are there');
  });
});
