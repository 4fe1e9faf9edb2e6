// Scale-out with real parts (API.md: fanout scales horizontally behind any load balancer): ingest,
// decode and three fanout replicas behind Debian's HAProxy with the checked-in
// deploy/haproxy/loopback.cfg, 200 real clients through it (100 @skyware/jetstream, 100 npm `ws`
// clients that reconnect with their cursor), while `jetstream-frames serve` plays 3,000 real relay
// frames. Under load one replica is killed with SIGKILL, later another gets SIGTERM (a graceful
// drain: 1001); every client ends with exactly the events of the log its filter selects, none
// missing, none twice, in order, and all of them on the one replica left.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { binaries, dictionaryPath, framesTool, httpGet, REPO_ROOT, serveCapture, sharedDir, skipReasonFor, startPipeline } from './lib/pipeline.mjs';
import { freePorts, sleep, waitFor } from './lib/util.mjs';

const CORPUS = path.join(sharedDir(), 'corpus', 'dev.frames');
const HAPROXY = '/usr/sbin/haproxy';
const CONFIG = path.join(REPO_ROOT, 'deploy', 'haproxy', 'loopback.cfg');
const FRAMES = 3000;
const RATE = 100; // frames/s: ~30 s of stream, so both faults happen under load
const SKYWARE_CLIENTS = 100;
const WS_CLIENTS = 100;
const LIKES = 'app.bsky.feed.like';

// ../shared or haproxy missing is a failure (scripts/install-deps.sh installs haproxy).
const SKIP = skipReasonFor(['ws', '@skyware/jetstream']);
if (SKIP) console.log(`# e2e skipped: ${SKIP}`);

test('scale-out: the corpus, the v1 dictionary and Debian haproxy are present', () => {
  for (const file of [CORPUS, dictionaryPath(), HAPROXY, CONFIG]) assert.ok(fs.existsSync(file), `${file} is absent`);
});

// What the skyware library hands to its listeners (it drops malformed events itself).
function skywareKeeps(e) {
  if (e.kind === 'commit') {
    return Boolean(e.commit?.collection && e.commit.rkey && e.commit.rev) && !(e.commit.operation === 'create' && !e.commit.record);
  }
  return e.kind === 'account' ? Boolean(e.account?.did) : e.kind === 'identity' ? Boolean(e.identity?.did) : false;
}

// A client's time_us sequence against the log's: the events its filter selects, in order. Skyware
// reconnects with cursor = the last time_us it saw (inclusive), so it may see that one event again
// right after a reconnection: such repeats are allowed, at most one per reconnection.
function compare(label, got, want, { repeatsAllowed = 0 } = {}) {
  const problems = [];
  const deduped = [];
  let repeats = 0;
  for (const t of got) {
    if (deduped.length && t === deduped[deduped.length - 1]) {
      repeats += 1;
      continue;
    }
    deduped.push(t);
  }
  if (repeats > repeatsAllowed) problems.push(`${label}: ${repeats} events received twice (${repeatsAllowed} allowed)`);
  for (let i = 0; i < Math.max(deduped.length, want.length) && problems.length < 3; i++) {
    if (deduped[i] !== want[i]) {
      problems.push(`${label}: event #${i} is time_us ${deduped[i] ?? '(none)'}, the log has ${want[i] ?? '(no more)'}`);
    }
  }
  if (deduped.length !== want.length) problems.push(`${label}: ${deduped.length} events, the log selects ${want.length}`);
  return problems;
}

describe('scale-out: 3 fanout replicas behind HAProxy, 200 real clients, kill -9 and a drain', { skip: SKIP, timeout: 300_000 }, () => {
  const run = { notes: [] };

  async function replicaCounts() {
    return Promise.all(
      run.pipeline.replicas.map(async (r) => {
        const service = run.pipeline.services[r.name];
        if (!service.running) return null;
        const { status, text } = await httpGet(`${r.metrics}/metrics`);
        if (status !== 200) return null;
        return text
          .split('\n')
          .filter((l) => l.startsWith('jetstream_subscribers_connected{'))
          .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
      }),
    );
  }
  // The number of events the sample client holds: how far the stream has come.
  const progress = () => run.sample.timeUs.length;

  before(async () => {
    run.work = fs.mkdtempSync(path.join(os.tmpdir(), 'jetstream-scale-out-'));
    const capture = path.join(run.work, 'upstream.frames');
    execFileSync(framesTool(), ['repeat', CORPUS, capture, '--frames', String(FRAMES)], { stdio: 'ignore' });
    // The log-to-be, in order (time_us 1, 2, …): what every client must end with.
    run.expected = execFileSync(framesTool(), ['decode', capture], { maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString('utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));

    const upstream = await serveCapture(capture, { rate: RATE });
    run.serve = upstream.child;
    run.pipeline = await startPipeline({
      wsUrl: upstream.wsUrl,
      workDir: run.work,
      dictionary: dictionaryPath(),
      bin: binaries(),
      fanoutReplicas: 3,
      // 200 clients share 127.0.0.1: no per-IP rate (v1's default limit is per client address).
      fanoutArgs: ['--max-sub-rate', '0', '--shutdown-grace', '5s'],
    });
    await waitFor(async () => (await Promise.all(run.pipeline.replicas.map((r) => httpGet(`${r.metrics}/readyz`)))).every((r) => r.status === 200), {
      timeoutMs: 30_000,
      what: 'every fanout replica ready',
    });

    // Picked once every port of the pipeline is bound, so none of them can come back here.
    const [lbPort, statsPort] = await freePorts(2);
    const env = { ...process.env, JETSTREAM_LB_BIND: `127.0.0.1:${lbPort}`, JETSTREAM_LB_STATS_BIND: `127.0.0.1:${statsPort}` };
    run.pipeline.replicas.forEach((r, i) => {
      env[`JETSTREAM_FANOUT_${i + 1}`] = `127.0.0.1:${r.httpPort}`;
      env[`JETSTREAM_FANOUT_${i + 1}_METRICS`] = String(r.metricsPort);
    });
    run.haproxyLog = path.join(run.work, 'haproxy.log');
    const log = fs.openSync(run.haproxyLog, 'a');
    run.haproxy = spawn(HAPROXY, ['-f', CONFIG, '-db'], { stdio: ['ignore', log, log], env });
    fs.closeSync(log);
    run.stats = `http://127.0.0.1:${statsPort}`;
    // All three servers UP in HAProxy's own view (its CSV stats: status is the 18th column).
    await waitFor(async () => {
      const { status, text } = await httpGet(`${run.stats}/stats;csv`);
      if (status !== 200) return false;
      return text.split('\n').filter((l) => l.startsWith('fanout,fanout') && l.split(',')[17] === 'UP').length === 3;
    }, { timeoutMs: 20_000, what: 'HAProxy to see the three replicas UP' });

    const lb = `ws://127.0.0.1:${lbPort}/subscribe`;
    run.lb = lb;
    const { openRaw, startSkyware, startReconnectingWs } = await import('./lib/clients.mjs');
    run.sample = startReconnectingWs({ url: lb, keepTexts: true });
    run.ws = [run.sample];
    for (let i = 1; i < WS_CLIENTS; i++) {
      run.ws.push(startReconnectingWs({ url: i % 4 === 0 ? `${lb}?wantedCollections=${LIKES}` : lb, keepTexts: i < 5 }));
    }
    run.skyware = [];
    for (let i = 0; i < SKYWARE_CLIENTS; i++) {
      // cursor 1: from the oldest event (0 would mean live to the library, which drops a falsy cursor).
      run.skyware.push(await startSkyware({ endpoint: lb, cursor: 1, wantedCollections: i % 4 === 0 ? [LIKES] : undefined }));
    }
    // Spread over the three replicas before any fault.
    await waitFor(async () => {
      run.before = await replicaCounts();
      return run.before.reduce((a, b) => a + (b ?? 0), 0) === WS_CLIENTS + SKYWARE_CLIENTS;
    }, { timeoutMs: 30_000, what: () => `all 200 clients connected through HAProxy (per replica: ${JSON.stringify(run.before)})` });

    // Fault 1, under load: kill -9 of the first replica once a third of the stream is out.
    await waitFor(() => progress() >= run.expected.length / 3, { timeoutMs: 60_000, what: 'a third of the stream' });
    run.killedAt = progress();
    run.killed = await run.pipeline.services.fanout.stop('SIGKILL');
    // Fault 2: a graceful drain of the second replica at two thirds.
    await waitFor(() => progress() >= (2 * run.expected.length) / 3, { timeoutMs: 90_000, what: 'two thirds of the stream' });
    run.drainedAt = progress();
    run.drained = await run.pipeline.services.fanout2.stop('SIGTERM', 20_000);

    // Every client gets to the end of the log.
    const want = (filtered) => (filtered ? run.expected.filter((e) => e.kind !== 'commit' || e.commit.collection === LIKES) : run.expected);
    run.wantAll = want(false).length;
    run.wantLikes = want(true).length;
    const done = () =>
      run.ws.every((c, i) => new Set(c.timeUs).size >= (i % 4 === 0 && i > 0 ? run.wantLikes : run.wantAll)) &&
      run.skyware.every((c, i) => new Set(c.events.map((e) => e.time_us)).size >= (i % 4 === 0 ? run.wantLikes : run.wantAll));
    try {
      await waitFor(done, { timeoutMs: 150_000, intervalMs: 200, what: 'every client at the end of the log' });
    } catch (err) {
      run.notes.push(err.message);
    }
    await sleep(1000); // an extra (duplicate) event would arrive now
    run.after = await replicaCounts();
    // The log itself, read afterwards through HAProxy from the oldest event.
    run.log = await openRaw(`${lb}?cursor=1`);
    try {
      await run.log.waitForCount(run.expected.length, 60_000, 'the whole log');
    } catch (err) {
      run.notes.push(err.message);
    }
  }, { timeout: 280_000 });

  after(async () => {
    run.log?.terminate();
    for (const c of run.ws ?? []) c.stop();
    for (const c of run.skyware ?? []) c.stop();
    run.haproxy?.kill('SIGTERM');
    if (run.pipeline) await run.pipeline.stop();
    run.serve?.kill('SIGTERM');
    console.log(`# scale-out: ${JSON.stringify({
      expected: run.expected?.length,
      perReplicaBefore: run.before,
      perReplicaAfter: run.after,
      killedAt: run.killedAt,
      killed: run.killed,
      drainedAt: run.drainedAt,
      drained: run.drained,
      wsReconnections: run.ws?.reduce((a, c) => a + c.opened - 1, 0),
      skywareReconnections: run.skyware?.reduce((a, c) => a + c.opened() - 1, 0),
    })}`);
    if (run.notes.length) console.log(`# waits that timed out:\n#   ${run.notes.join('\n#   ')}`);
    if (run.work && !process.env.JETSTREAM_E2E_KEEP) fs.rmSync(run.work, { recursive: true, force: true });
    else if (run.work) console.log(`# work folder kept: ${run.work}`);
  });

  const logs = () => `${run.pipeline?.tails(15) ?? ''}\n---- haproxy ----\n${fs.existsSync(run.haproxyLog ?? '') ? fs.readFileSync(run.haproxyLog, 'utf8').split('\n').slice(-15).join('\n') : ''}`;
  const fail = (problems) => {
    if (problems.length === 0) return;
    const notes = run.notes.length ? `\nwaits that timed out:\n  ${run.notes.join('\n  ')}` : '';
    assert.fail(`${problems.slice(0, 20).join('\n')}${problems.length > 20 ? `\n… ${problems.length - 20} more` : ''}${notes}\n${logs()}`);
  };

  test('HAProxy spread the 200 clients over all three replicas before the faults', () => {
    assert.equal(run.before.length, 3);
    for (const [i, n] of run.before.entries()) assert.ok(n > 0, `replica ${i + 1} had no client: ${JSON.stringify(run.before)}`);
  });

  test('kill -9 and SIGTERM happened under load; the drained replica closed its clients with 1001', () => {
    assert.equal(run.killed?.signal, 'SIGKILL');
    assert.equal(run.drained?.code, 0, `fanout2 exit after SIGTERM: ${JSON.stringify(run.drained)}`);
    assert.ok(run.killedAt < run.expected.length && run.drainedAt < run.expected.length, 'the faults came before the end of the stream');
    const codes = run.ws.flatMap((c) => c.closes);
    assert.ok(codes.includes(1001), `no ws client saw 1001 from the drain: ${JSON.stringify([...new Set(codes)])}`);
    assert.ok(codes.includes(1006), `no ws client saw its replica die (1006): ${JSON.stringify([...new Set(codes)])}`);
  });

  test('every client moved through HAProxy to the replica left, with its cursor', () => {
    assert.deepEqual(run.after.slice(0, 2), [null, null], 'the two stopped replicas are gone');
    assert.equal(run.after[2], WS_CLIENTS + SKYWARE_CLIENTS, `clients on the last replica: ${JSON.stringify(run.after)}`);
    const moved = run.ws.filter((c) => c.opened > 1).length + run.skyware.filter((c) => c.opened() > 1).length;
    assert.ok(moved >= (2 * (WS_CLIENTS + SKYWARE_CLIENTS)) / 3 - 10, `only ${moved} clients reconnected (those on two of three replicas must)`);
  });

  // decode numbers time_us itself: a client's time_us → the event's position in the log (1-based).
  const positions = () => new Map(run.log.texts().map((t, i) => [Number(/"time_us":(\d+)/.exec(t)[1]), i + 1]));
  const withoutTime = (e) => {
    const copy = { ...e };
    delete copy.time_us;
    return JSON.stringify(copy);
  };

  test('the log read back through HAProxy is the capture, event for event', () => {
    const problems = [];
    const texts = run.log.texts();
    if (texts.length !== run.expected.length) problems.push(`the log holds ${texts.length} events, the capture ${run.expected.length}`);
    texts.forEach((t, i) => {
      if (problems.length < 5 && i < run.expected.length && withoutTime(JSON.parse(t)) !== withoutTime(run.expected[i])) {
        problems.push(`log event #${i + 1} is not the capture's:\n  ${t.slice(0, 300)}`);
      }
    });
    fail(problems);
  });

  test('each ws client (cursor = last + 1) has exactly the events of the log its filter selects, in order, none twice', () => {
    const problems = [];
    const all = run.expected.map((_, i) => i + 1);
    const likes = run.expected.flatMap((e, i) => (e.kind !== 'commit' || e.commit.collection === LIKES ? [i + 1] : []));
    const position = positions();
    run.ws.forEach((c, i) => {
      const filtered = i % 4 === 0 && i > 0;
      problems.push(...compare(`ws client ${i}`, c.timeUs.map((t) => position.get(t)), filtered ? likes : all));
      // The kept texts are byte for byte the log's.
      const log = run.log.texts();
      c.texts.forEach((t, k) => {
        const at = position.get(Number(/"time_us":(\d+)/.exec(t)[1]));
        if (problems.length < 20 && log[at - 1] !== t) problems.push(`ws client ${i} text #${k} differs from the log's`);
      });
    });
    fail(problems);
  });

  test('each @skyware/jetstream client has exactly the events of the log its filter selects, in order (a repeat only of its cursor event)', () => {
    const problems = [];
    const position = positions();
    const kept = (filtered) =>
      run.expected.flatMap((e, i) => (skywareKeeps(e) && (!filtered || e.kind !== 'commit' || e.commit.collection === LIKES) ? [i + 1] : []));
    const all = kept(false);
    const likes = kept(true);
    run.skyware.forEach((c, i) => {
      problems.push(...compare(`skyware client ${i}`, c.events.map((e) => position.get(e.time_us)), i % 4 === 0 ? likes : all, {
        repeatsAllowed: c.opened() - 1,
      }));
    });
    fail(problems);
  });
});
