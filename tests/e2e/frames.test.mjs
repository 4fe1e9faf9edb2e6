// The scenario against a real PDS, its firehose captured raw by a direct subscriber, then decoded
// by `jetstream-frames decode` (the same v1 encoder decode uses): every event must be byte for byte
// the one built independently from the XRPC answers (lib/expect.mjs), except time_us. Needs only
// the frames tool, so it also runs where the services are not built.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { framesTool } from './lib/pipeline.mjs';
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

describe('e2e: the PDS firehose decoded by jetstream-frames', { skip: SKIP, timeout: 100_000 }, () => {
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
    await run.pds?.stop();
    if (run.work) fs.rmSync(run.work, { recursive: true, force: true });
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
});
