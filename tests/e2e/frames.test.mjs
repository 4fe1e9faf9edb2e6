// The scenario against a real PDS, its firehose captured raw by a direct subscriber, then decoded
// by `jetstream-frames decode` (the same v1 encoder decode uses): every event must be byte for byte
// the one built independently from the XRPC answers (lib/expect.mjs), except time_us. Then the
// capture through decode --verify signatures and full against the PDS's PLC, and decode --verify
// full live on the PDS's firehose through a signing key rotation on the real PLC.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { binaries, buildDir, dictionaryPath, framesTool, metricValue, serveCapture, startPipeline } from './lib/pipeline.mjs';
import { freePorts, sleep, waitFor } from './lib/util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function skipReason() {
  if (!fs.existsSync(path.join(HERE, 'node_modules', '@atproto', 'pds', 'package.json'))) {
    return `npm packages not installed in ${path.join(HERE, 'node_modules')}: run bash tests/e2e/install.sh`;
  }
  if (!fs.existsSync(framesTool())) return `not built: ${framesTool()}`;
  return false;
}
const SKIP = skipReason();
if (SKIP) console.log(`# e2e skipped: ${SKIP}`);

describe('e2e: the PDS firehose decoded by jetstream-frames', { skip: SKIP, timeout: 170_000 }, () => {
  const run = {};
  let lib;

  before(async () => {
    lib = {
      ...(await import('./lib/pds.mjs')),
      ...(await import('./lib/firehose-tap.mjs')),
      ...(await import('./lib/scenario.mjs')),
      ...(await import('./lib/expect.mjs')),
    };
    run.work = fs.mkdtempSync(path.join(os.tmpdir(), 'jetstream-e2e-frames-'));
    const [pdsPort, plcPort] = await freePorts(2);
    run.pds = await lib.startPds({ pdsPort, plcPort });
    run.tap = await lib.openTap(run.pds.firehose);
    const rec = new lib.Recorder(run.pds.url);
    const st = {};
    run.rec = rec;
    run.st = st;
    for (const phase of Object.values(lib.phases)) await phase(rec, st);
    await waitFor(() => lib.firehoseEffects(run.tap.frames).length >= rec.expected.length, {
      timeoutMs: 10_000,
      what: 'every action on the PDS firehose',
    }).catch(() => {});
    await sleep(300);
    run.reconciled = lib.reconcile(rec.expected, run.tap.frames);
    run.capture = path.join(run.work, 'scenario.frames');
    fs.writeFileSync(run.capture, run.tap.capture());
    run.decoded = execFileSync(framesTool(), ['decode', run.capture], { timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] })
      .toString('utf8')
      .split('\n')
      .filter(Boolean);
  }, { timeout: 90_000 });

  after(async () => {
    run.tap?.close();
    run.verifyClient?.terminate();
    if (run.verifyPipeline) await run.verifyPipeline.stop();
    run.liveClient?.terminate();
    if (run.livePipeline) await run.livePipeline.stop();
    run.serve?.kill('SIGTERM');
    await run.pds?.stop();
    if (run.work && !process.env.JETSTREAM_E2E_KEEP) fs.rmSync(run.work, { recursive: true, force: true });
    if (process.env.JETSTREAM_E2E_KEEP) console.log(`# kept ${run.work}`);
  });

  test('the PDS firehose carries exactly the recorded actions', () => {
    assert.deepEqual(run.tap.errors, []);
    assert.deepEqual(run.reconciled.problems, []);
    assert.deepEqual(run.pds.guardViolations(), []);
  });

  test('jetstream-frames decode gives one v1 event per action, byte for byte (time_us aside)', () => {
    const problems = lib.compareStream(
      run.decoded,
      run.reconciled.events.map((e) => e.template),
      { label: 'jetstream-frames decode' },
    );
    assert.deepEqual(problems, []);
  });

  // The same capture through ingest and decode --verify signatures, then --verify full (also the
  // Sync 1.1 proof of every commit and its rev), against the PDS's own PLC directory (still
  // running): every commit the real PDS signed passes, nothing is dropped for a verification
  // reason, and the events are those jetstream-frames decode gave (time_us aside; a DID's events
  // may move behind another DID's while its first commit waits for the directory, so the
  // comparison is of the sets, and of each DID's order).
  for (const mode of ['signatures', 'full']) {
    test(`decode --verify ${mode} passes every commit the real PDS signed, resolving DIDs through its PLC`, async () => {
      const bin = binaries(buildDir());
      assert.ok(fs.existsSync(bin.decode) && fs.existsSync(bin.ingest) && fs.existsSync(bin.fanout),
        `the services are not built in ${buildDir()}`);
      const upstream = await serveCapture(run.capture);
      run.serve = upstream.child;
      run.verifyPipeline = await startPipeline({
        wsUrl: upstream.wsUrl,
        workDir: path.join(run.work, mode),
        dictionary: dictionaryPath(),
        bin,
        decodeArgs: ['--verify', mode, '--plc-url', run.pds.plc],
      });
      try {
        const clients = await import('./lib/clients.mjs');
        run.verifyClient = await clients.openRaw(`${run.verifyPipeline.fanoutWs}/subscribe?cursor=0`);
        try {
          await run.verifyClient.waitForCount(run.decoded.length, 30_000, `events through decode --verify ${mode}`);
        } catch (err) {
          const scrape = (await (await fetch(`${run.verifyPipeline.metrics.decode}/metrics`)).text())
            .split('\n')
            .filter((l) => /drops_total|held|resolutions|http_client/.test(l) && !l.startsWith('#'))
            .join('\n');
          assert.fail(`${err.message}\n${scrape}\n${run.verifyPipeline.tails(40)}`);
        }
        // The log is final once decode's cursor covers the capture's last frame and nothing is
        // held; then the fanout client has everything the log holds.
        const lastSeq = run.tap.lastSeq();
        await waitFor(async () =>
          (await metricValue(run.verifyPipeline.metrics.decode, 'consumer_last_seq')) >= lastSeq &&
          (await metricValue(run.verifyPipeline.metrics.decode, 'jetstream_decode_verify_held_frames')) === 0 &&
          (await metricValue(run.verifyPipeline.metrics.decode, 'jetstream_decode_events_stored_total')) ===
            run.verifyClient.count(), { timeoutMs: 30_000, what: 'decode to decide every frame' });
        const blank = (t) => t.replace(/"time_us":\d+/, '"time_us":0');
        const got = run.verifyClient.texts().map(blank);
        const want = run.decoded.map(blank);
        assert.deepEqual([...got].sort(), [...want].sort());
        const byDid = (lines) => {
          const out = {};
          for (const line of lines) (out[JSON.parse(line).did] ??= []).push(line);
          return out;
        };
        assert.deepEqual(byDid(got), byDid(want));
        const decodeMetrics = run.verifyPipeline.metrics.decode;
        const reasons = ['bad_signature', 'bad_commit', 'unknown_key', 'unresolvable_did', 'ops_mismatch',
          'mst_mismatch', 'rev_not_increasing', 'rev_in_future', 'no_prev_data'];
        for (const reason of reasons) {
          assert.equal(await metricValue(decodeMetrics, `jetstream_decode_drops_total{reason="${reason}"}`), 0, reason);
        }
        // The identity figures reach /metrics with decode's next heartbeat tick (1 s): wait for it.
        await waitFor(
          async () => (await metricValue(decodeMetrics, 'jetstream_identity_resolutions_total{outcome="resolved"}')) >= 3,
          { timeoutMs: 30_000, what: 'the three accounts resolved through the PLC (decode metrics)' });
        if (mode === 'full') {
          // The real PDS writes Sync 1.1 frames: every commit was proven, none passed unproven.
          assert.equal(await metricValue(decodeMetrics, 'jetstream_decode_verify_unproven_commits_total'), 0);
          assert.ok((await metricValue(decodeMetrics, 'jetstream_decode_verify_repo_revs')) >= 3);
        }
      } finally {
        run.verifyClient?.terminate();
        run.verifyClient = undefined;
        await run.verifyPipeline.stop();
        run.verifyPipeline = undefined;
        run.serve.kill('SIGTERM');
        run.serve = undefined;
      }
    });
  }

  // Live, through a key rotation, in both modes: decode --verify follows the PDS's own firehose while the
  // PDS moves an account to a new signing key (an operation on the real PLC directory and an
  // #identity event, as an account migration does): its commits before and after pass. Then the
  // PDS signs with a key the directory does not list: that commit is dropped as bad_signature,
  // after one fresh look at the document, and nothing else is.
  for (const mode of ['signatures', 'full']) {
    test(`live: decode --verify ${mode} follows the real PDS through a key rotation on the real PLC`, async () => {
      const bin = binaries(buildDir());
      const bob = run.st.bob;  // alice was taken down and restored: her session may be gone
      // The run before left the PDS signing with a key the directory does not list: publish one
      // (before this pipeline starts, so it sees none of it).
      if (mode !== 'signatures') await run.pds.rotateSigningKey(bob.did);
      run.livePipeline = await startPipeline({
        wsUrl: run.pds.firehose,
        workDir: path.join(run.work, `live-${mode}`),
        dictionary: dictionaryPath(),
        bin,
        decodeArgs: ['--verify', mode, '--plc-url', run.pds.plc],
      });
      try {
        const decodeMetrics = run.livePipeline.metrics.decode;
        const clients = await import('./lib/clients.mjs');
        run.liveClient = await clients.openRaw(`${run.livePipeline.fanoutWs}/subscribe?wantedCollections=app.bsky.feed.post`);
        // (identity and account events pass collection filters, as in v1: only commits are counted)
        const texts = () => run.liveClient.texts().map((t) => JSON.parse(t))
          .filter((e) => e.kind === 'commit').map((e) => e.commit.record?.text);
        const write = (text) => run.rec.createRecord(bob, 'app.bsky.feed.post', {
          $type: 'app.bsky.feed.post', text, createdAt: new Date().toISOString(),
        });
        const arrives = (text) => waitFor(() => texts().includes(text), {
          timeoutMs: 20_000, what: async () => `"${text}" through decode --verify ${mode}\n${run.livePipeline.tails(20)}`,
        });
        await write(`signed with the first key (${mode})`);
        await arrives(`signed with the first key (${mode})`);

        // (this directory serves the legacy document form: the key as an uncompressed point)
        const listedKey = async () => (await (await fetch(`${run.pds.plc}/${bob.did}`)).json())
          .verificationMethod.find((m) => m.id.endsWith('#atproto')).publicKeyMultibase;
        const keyBefore = await listedKey();
        await run.pds.rotateSigningKey(bob.did);
        assert.notEqual(await listedKey(), keyBefore, 'the directory lists the new key');
        await write(`signed with the rotated key (${mode})`);
        await arrives(`signed with the rotated key (${mode})`);

        await run.pds.rotateSigningKey(bob.did, { publish: false });
        await write(`signed with a key nobody lists (${mode})`);
        await waitFor(async () =>
          (await metricValue(decodeMetrics, 'jetstream_decode_drops_total{reason="bad_signature"}')) === 1,
        { timeoutMs: 20_000, what: 'the commit signed by an unlisted key dropped as bad_signature' });
        assert.ok(!texts().includes(`signed with a key nobody lists (${mode})`));
        assert.deepEqual(texts(), [`signed with the first key (${mode})`, `signed with the rotated key (${mode})`]);
        for (const reason of ['bad_commit', 'unknown_key', 'unresolvable_did', 'ops_mismatch', 'mst_mismatch',
          'rev_not_increasing', 'rev_in_future', 'no_prev_data']) {
          assert.equal(await metricValue(decodeMetrics, `jetstream_decode_drops_total{reason="${reason}"}`), 0, reason);
        }
        // bob's document was fetched again after his #identity, and once more before the rejection
        // (the resolver's figures reach the metrics on decode's next heartbeat).
        await waitFor(async () =>
          (await metricValue(decodeMetrics, 'jetstream_identity_resolutions_total{outcome="resolved"}')) >= 3,
        { timeoutMs: 20_000, what: "three resolutions of bob's document" });
      } finally {
        run.liveClient?.terminate();
        run.liveClient = undefined;
        await run.livePipeline.stop();
        run.livePipeline = undefined;
      }
    });
  }
});
