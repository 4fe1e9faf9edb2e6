// The README's local stack: `scripts/run.sh` (with --build-dir, so it runs this build tree and
// builds nothing) against the two offline upstreams the README documents, `jetstream-frames serve`
// of the recorded corpus and a local PDS (lib/pds-server.mjs). Checks that it prints where to
// connect, that a client there gets events (with a filter and a cursor, as in README "Try it"),
// and that a Ctrl-C (SIGINT to the terminal's process group) stops every service cleanly.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { binaries, buildDir, framesTool, REPO_ROOT, sharedDir } from './lib/pipeline.mjs';
import { freePorts, waitFor, waitListening, withTimeout } from './lib/util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CORPUS = path.join(sharedDir(), 'corpus', 'dev.frames');
const DICTIONARY = path.join(sharedDir(), 'zstd', 'jetstream-v1.zdict');

function skipReason() {
  if (!fs.existsSync(path.join(HERE, 'node_modules', 'ws', 'package.json'))) {
    return `npm packages not installed in ${path.join(HERE, 'node_modules')}: run bash tests/e2e/install.sh`;
  }
  const missing = [...Object.values(binaries()), framesTool()].filter((p) => !fs.existsSync(p));
  if (missing.length) return `not built: ${missing.join(', ')}`;
  return false;  // ../shared missing is a failure, not a skip (the test below)
}
const SKIP = skipReason();
if (SKIP) console.log(`# e2e skipped: ${SKIP}`);

test('e2e: run.sh finds the corpus and the v1 dictionary in ../shared', () => {
  for (const file of [CORPUS, DICTIONARY]) assert.ok(fs.existsSync(file), `${file} is absent`);
});

// runStack(wsUrl, workDir): starts run.sh in its own process group, as a terminal would.
async function runStack(wsUrl, workDir) {
  const [fanout, fanoutMetrics, frames, control, ingestMetrics, events, replay, decodeMetrics, backfill] = await freePorts(9);
  const loop = '127.0.0.1';
  const args = [
    path.join(REPO_ROOT, 'scripts', 'run.sh'),
    '--build-dir', buildDir(),
    '--ws-url', wsUrl,
    '--data-dir', path.join(workDir, 'data'),
    '--fanout-arg', `--listen-addr=${loop}:${fanout}`,
    '--fanout-arg', `--metrics-listen-addr=${loop}:${fanoutMetrics}`,
    '--fanout-arg', `--events-endpoint=tcp://${loop}:${events}`,
    '--fanout-arg', `--replay-endpoint=tcp://${loop}:${replay}`,
    '--ingest-arg', `--frames-listen-addr=${loop}:${frames}`,
    '--ingest-arg', `--control-listen-addr=${loop}:${control}`,
    '--ingest-arg', `--metrics-listen-addr=${loop}:${ingestMetrics}`,
    '--ingest-arg', '--stall-timeout=0',
    '--decode-arg', `--frames-endpoint=tcp://${loop}:${frames}`,
    '--decode-arg', `--control-endpoint=tcp://${loop}:${control}`,
    '--decode-arg', `--events-endpoint=tcp://${loop}:${events}`,
    '--decode-arg', `--replay-endpoint=tcp://${loop}:${replay}`,
    '--decode-arg', `--backfill-endpoint=tcp://${loop}:${backfill}`,
    '--decode-arg', `--metrics-listen-addr=${loop}:${decodeMetrics}`,
  ];
  const env = { ...process.env, JETSTREAM_SHARED_DIR: sharedDir() };
  delete env.JETSTREAM_ZSTD_DICTIONARY_PATH; // run.sh must find ../shared/zstd on its own
  const child = spawn('bash', args, { cwd: workDir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const stack = { child, output: '', exit: null, connectUrl: `ws://${loop}:${fanout}/subscribe` };
  child.stdout.on('data', (c) => {
    stack.output += c;
  });
  child.stderr.on('data', (c) => {
    stack.output += c;
  });
  stack.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      stack.exit = { code, signal };
      resolve(stack.exit);
    });
  });
  process.on('exit', () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  return stack;
}

// ctrlC(stack): SIGINT to run.sh's process group, as the terminal sends it; then the service pids
// from its "stopping <service> (pid N)" lines must be gone.
async function ctrlC(stack) {
  process.kill(-stack.child.pid, 'SIGINT');
  const exit = await withTimeout(stack.exited, 40_000, 'run.sh to exit after Ctrl-C');
  const pids = [...stack.output.matchAll(/==> stopping (\w+) \(pid (\d+)\)/g)].map((m) => ({ service: m[1], pid: Number(m[2]) }));
  const alive = pids.filter(({ pid }) => fs.existsSync(`/proc/${pid}`) && !/^Z/m.test(procState(pid)));
  return { exit, pids, alive };
}

function procState(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^State:\s+(\S)/m)?.[1] ?? '';
  } catch {
    return 'Z';
  }
}

async function collect(url) {
  const { openRaw } = await import('./lib/clients.mjs');
  const client = await openRaw(url);
  return client;
}

describe('e2e: scripts/run.sh, the local stack', { skip: SKIP, timeout: 110_000 }, () => {
  const run = {};

  before(() => {
    run.work = fs.mkdtempSync(path.join(os.tmpdir(), 'jetstream-e2e-runsh-'));
  });

  after(async () => {
    for (const p of [run.serve, run.stackA?.child, run.stackB?.child]) {
      try {
        if (p && p.exitCode === null) process.kill(-p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (run.pds) await run.pds.stop();
    fs.rmSync(run.work, { recursive: true, force: true });
  });

  test('against `jetstream-frames serve` of the corpus (offline): prints where to connect, serves filtered events with a cursor, stops on Ctrl-C', async () => {
    const [servePort] = await freePorts(1);
    run.serve = spawn(framesTool(), ['serve', CORPUS, '--listen', `127.0.0.1:${servePort}`, '--keep-open'], {
      stdio: 'ignore',
      detached: true,
    });
    await waitListening(servePort); // before runStack picks its own ports
    const dir = path.join(run.work, 'serve');
    fs.mkdirSync(dir);
    const stack = await runStack(`ws://127.0.0.1:${servePort}/xrpc/com.atproto.sync.subscribeRepos`, dir);
    run.stackA = stack;
    await waitFor(() => stack.output.includes('==> connect:') || stack.exit, {
      timeoutMs: 30_000,
      what: () => `run.sh to print "==> connect:"; output so far:\n${stack.output}`,
    });
    assert.equal(stack.exit, null, `run.sh exited early:\n${stack.output}`);
    assert.ok(stack.output.includes(`==> connect:   ${stack.connectUrl}`), stack.output);
    assert.match(stack.output, /==> zstd dict: .*jetstream-v1\.zdict/);

    // README "Try it": a real filter and a cursor.
    const all = await collect(`${stack.connectUrl}?cursor=0`);
    await all.waitForCount(77, 30_000, 'the whole corpus (77 events)');
    const first = JSON.parse(all.texts()[0]);
    const posts = await collect(`${stack.connectUrl}?wantedCollections=app.bsky.feed.post&cursor=${first.time_us}`);
    const wantPosts = all.texts().filter((t) => JSON.parse(t).commit?.collection === 'app.bsky.feed.post');
    await posts.waitForCount(wantPosts.length, 20_000, 'the posts of the corpus');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(posts.texts(), wantPosts);
    all.terminate();
    posts.terminate();

    const { exit, pids, alive } = await ctrlC(stack);
    assert.equal(exit.code, 130, `exit status after Ctrl-C:\n${stack.output}`);
    assert.match(stack.output, /==> interrupted/);
    assert.deepEqual(pids.map((p) => p.service), ['fanout', 'ingest', 'decode'], stack.output);
    assert.deepEqual(alive, []);
    assert.doesNotMatch(stack.output, /did not stop within/);
    // the services logged their own orderly shutdown (their output pipes survived the Ctrl-C)
    assert.match(stack.output, /\[fanout\] .*fanout stopped/);
    assert.match(stack.output, /\[decode\] .*decode stopped/);
    if (process.env.JETSTREAM_E2E_VERBOSE) console.log(stack.output);
    process.kill(-run.serve.pid, 'SIGTERM');
  });

  test('against a local PDS (lib/pds-server.mjs): a post made through XRPC reaches a client of run.sh', async () => {
    const { startPds, xrpc, bearer } = await import('./lib/pds.mjs');
    const [pdsPort, plcPort] = await freePorts(2);
    run.pds = await startPds({ pdsPort, plcPort });
    const dir = path.join(run.work, 'pds');
    fs.mkdirSync(dir);
    const stack = await runStack(run.pds.firehose, dir);
    run.stackB = stack;
    await waitFor(() => stack.output.includes('==> connect:') || stack.exit, {
      timeoutMs: 30_000,
      what: () => `run.sh to print "==> connect:"; output so far:\n${stack.output}`,
    });
    // ingest connects upstream once decode asked it to: wait for it before writing.
    await waitFor(() => stack.output.includes('upstream connected'), { timeoutMs: 20_000, what: 'ingest connected to the PDS' });
    const client = await collect(`${stack.connectUrl}?wantedCollections=app.bsky.feed.post`);
    const account = await xrpc(run.pds.url, 'com.atproto.server.createAccount', {
      body: { handle: 'dave.test', email: 'dave@example.test', password: 'dave-password' },
    });
    const out = await xrpc(run.pds.url, 'com.atproto.repo.createRecord', {
      auth: bearer(account),
      body: {
        repo: account.did,
        collection: 'app.bsky.feed.post',
        record: { $type: 'app.bsky.feed.post', text: 'hello, local stack', createdAt: new Date().toISOString() },
      },
    });
    // identity and account events pass a collection filter: the account's arrive first
    const isPost = (t) => JSON.parse(t).kind === 'commit';
    await waitFor(() => client.texts().some(isPost), { timeoutMs: 20_000, what: 'the post at the client' });
    const kinds = client.texts().map((t) => JSON.parse(t).kind);
    assert.deepEqual(kinds, ['identity', 'account', 'commit']);
    const event = JSON.parse(client.texts().find(isPost));
    assert.equal(event.did, account.did);
    assert.equal(event.commit.cid, out.cid);
    assert.equal(event.commit.record.text, 'hello, local stack');
    client.terminate();

    const { exit, alive } = await ctrlC(stack);
    assert.equal(exit.code, 130, stack.output);
    assert.deepEqual(alive, []);
  });
});
