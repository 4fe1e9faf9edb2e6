// The pipeline under test, started as scripts/run.sh starts it: three processes (decode first,
// then ingest, then fanout), the same flags and JETSTREAM_* environment as run.sh, plus the
// listen/endpoint flags that put every socket on a free 127.0.0.1 port. Each process's output
// goes to a log file in the run's temporary folder; `tail()` shows it when a test fails.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, waitFor, waitListening, withTimeout } from './util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../../..');

// Where the built services are: $JETSTREAM_E2E_BUILD_DIR (set by CTest to the build tree), else
// build/ci of this repository.
export function buildDir() {
  return path.resolve(process.env.JETSTREAM_E2E_BUILD_DIR || path.join(REPO_ROOT, 'build', 'ci'));
}

export function binaries(dir = buildDir()) {
  return {
    ingest: path.join(dir, 'services', 'ingest', 'jetstream-ingest'),
    decode: path.join(dir, 'services', 'decode', 'jetstream-decode'),
    fanout: path.join(dir, 'services', 'fanout', 'jetstream-fanout'),
    backfill: path.join(dir, 'services', 'backfill', 'jetstream-backfill'),
  };
}

export function framesTool(dir = buildDir()) {
  return path.join(dir, 'tools', 'frames', 'jetstream-frames');
}

// serveCapture(capture, {rate}) -> {child, wsUrl}: `jetstream-frames serve` of a capture file on a
// free loopback port (--keep-open; `rate` frames/s when given), returned once it listens, so a
// later freePorts() (startPipeline's) cannot hand out its port again.
export async function serveCapture(capture, { rate } = {}) {
  const [port] = await freePorts(1);
  const args = ['serve', capture, '--listen', `127.0.0.1:${port}`, '--keep-open'];
  if (rate !== undefined) args.push('--rate', String(rate));
  const child = spawn(framesTool(), args, { stdio: 'ignore' });
  live.add(child);
  child.on('exit', () => live.delete(child));
  await waitListening(port);
  return { child, wsUrl: `ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos` };
}

// skipReasonFor(packages): why an e2e file that plays `jetstream-frames serve` into the services
// cannot run here (an npm package of `packages` not installed, a binary not built), or false.
// ../shared or a Debian package missing is a failure, not a skip: the install step provides them.
export function skipReasonFor(packages) {
  const modules = path.join(REPO_ROOT, 'tests', 'e2e', 'node_modules');
  for (const pkg of packages) {
    if (!fs.existsSync(path.join(modules, pkg, 'package.json'))) {
      return `npm packages not installed in ${modules}: run bash tests/e2e/install.sh`;
    }
  }
  const missing = [...Object.values(binaries()), framesTool()].filter((p) => !fs.existsSync(p));
  if (missing.length) return `not built: ${missing.join(', ')}`;
  return false;
}

// ../shared: $JETSTREAM_SHARED_DIR, else the folder CMake recorded (JETSTREAM_E2E_SHARED_DEFAULT),
// else ../shared beside the repository.
export function sharedDir() {
  return path.resolve(
    process.env.JETSTREAM_SHARED_DIR ||
      process.env.JETSTREAM_E2E_SHARED_DEFAULT ||
      path.join(REPO_ROOT, '..', 'shared'),
  );
}

export function dictionaryPath() {
  return process.env.JETSTREAM_ZSTD_DICTIONARY_PATH || path.join(sharedDir(), 'zstd', 'jetstream-v1.zdict');
}

// Children still alive when this process exits are killed, whatever way it exits.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

class Service {
  constructor(name, binary, args, env, logPath) {
    this.name = name;
    this.binary = binary;
    this.args = args;
    this.env = env;
    this.logPath = logPath;
    this.child = null;
    this.exits = [];
  }

  start() {
    const fd = fs.openSync(this.logPath, 'a');
    fs.writeSync(fd, `\n==> ${new Date().toISOString()} ${this.binary} ${this.args.join(' ')}\n`);
    const child = spawn(this.binary, this.args, { stdio: ['ignore', fd, fd], env: this.env });
    fs.closeSync(fd);
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        this.exits.push({ code, signal });
        resolve({ code, signal });
      });
    });
    return this;
  }

  get running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  // stop(signal): sends the signal, waits up to `graceMs`, then SIGKILL; returns {code, signal}.
  async stop(signal = 'SIGTERM', graceMs = 10_000) {
    if (!this.running) return this.exits[this.exits.length - 1] ?? null;
    this.child.kill(signal);
    const result = await withTimeout(this.exited, graceMs, `${this.name} exit after ${signal}`).catch(
      () => null,
    );
    if (result) return result;
    this.child.kill('SIGKILL');
    const killed = await this.exited;
    return { ...killed, forced: true };
  }

  tail(lines = 40) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

// startPipeline({wsUrl, workDir, dictionary, decodeArgs, backfillArgs}) -> Pipeline with .fanoutUrl,
// .services, .stop() ... With `backfillArgs` (an array), services.backfill is jetstream-backfill
// wired to this decode, not started: the test starts it when its scenario wants. `fanoutReplicas`
// > 1 starts that many fanouts on the same decode (services.fanout is the first, then fanout2, …;
// `replicas` lists each one's addresses), each with `fanoutArgs`.
export async function startPipeline({
  wsUrl, workDir, dictionary, bin = binaries(), decodeArgs = [], backfillArgs = null, fanoutReplicas = 1,
  fanoutArgs = [],
}) {
  const [frames, control, ingestMetrics, events, replay, decodeMetrics, fanoutHttp, fanoutMetrics, backfill,
    backfillMetrics] = await freePorts(10);
  const morePorts = fanoutReplicas > 1 ? await freePorts(2 * (fanoutReplicas - 1)) : [];
  const replicaPorts = [[fanoutHttp, fanoutMetrics]];
  for (let i = 0; i + 1 < morePorts.length; i += 2) replicaPorts.push([morePorts[i], morePorts[i + 1]]);
  const dataDir = path.join(workDir, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const env = {
    ...process.env,
    // what run.sh exports to every service
    JETSTREAM_WS_URL: wsUrl,
    JETSTREAM_DATA_DIR: dataDir,
    JETSTREAM_ZSTD_DICTIONARY_PATH: dictionary,
  };
  const loop = '127.0.0.1';
  const services = {
    // run.sh: decode --data-dir D --zstd-dictionary-path F
    decode: new Service('decode', bin.decode, [
      '--data-dir', dataDir, '--zstd-dictionary-path', dictionary,
      '--frames-endpoint', `tcp://${loop}:${frames}`,
      '--control-endpoint', `tcp://${loop}:${control}`,
      '--events-endpoint', `tcp://${loop}:${events}`,
      '--replay-endpoint', `tcp://${loop}:${replay}`,
      '--backfill-endpoint', `tcp://${loop}:${backfill}`,
      '--metrics-listen-addr', `${loop}:${decodeMetrics}`,
      ...decodeArgs,
    ], env, path.join(workDir, 'decode.log')),
    // run.sh: ingest --ws-url URL
    ingest: new Service('ingest', bin.ingest, [
      '--ws-url', wsUrl,
      '--frames-listen-addr', `${loop}:${frames}`,
      '--control-listen-addr', `${loop}:${control}`,
      '--metrics-listen-addr', `${loop}:${ingestMetrics}`,
    ], env, path.join(workDir, 'ingest.log')),
  };
  // run.sh: fanout (the dictionary comes from JETSTREAM_ZSTD_DICTIONARY_PATH)
  replicaPorts.forEach(([http, metrics], i) => {
    const name = i === 0 ? 'fanout' : `fanout${i + 1}`;
    services[name] = new Service(name, bin.fanout, [
      '--listen-addr', `${loop}:${http}`,
      '--metrics-listen-addr', `${loop}:${metrics}`,
      '--events-endpoint', `tcp://${loop}:${events}`,
      '--replay-endpoint', `tcp://${loop}:${replay}`,
      ...fanoutArgs,
    ], env, path.join(workDir, `${name}.log`));
  });
  const backfill_service = backfillArgs === null ? null : new Service('backfill', bin.backfill, [
    '--data-dir', path.join(workDir, 'backfill'),
    '--decode-backfill-endpoint', `tcp://${loop}:${backfill}`,
    '--decode-events-endpoint', `tcp://${loop}:${events}`,
    '--metrics-listen-addr', `${loop}:${backfillMetrics}`,
    ...backfillArgs,
  ], env, path.join(workDir, 'backfill.log'));
  const pipeline = {
    services,
    dataDir,
    fanoutHttp: `http://${loop}:${fanoutHttp}`,
    fanoutWs: `ws://${loop}:${fanoutHttp}`,
    replicas: replicaPorts.map(([http, metrics], i) => ({
      name: i === 0 ? 'fanout' : `fanout${i + 1}`,
      httpPort: http,
      metricsPort: metrics,
      http: `http://${loop}:${http}`,
      metrics: `http://${loop}:${metrics}`,
    })),
    metrics: {
      ingest: `http://${loop}:${ingestMetrics}`,
      decode: `http://${loop}:${decodeMetrics}`,
      fanout: `http://${loop}:${fanoutMetrics}`,
      backfill: `http://${loop}:${backfillMetrics}`,
    },
    backfill: backfill_service,
    tails(lines = 30) {
      return [...Object.values(services), ...(backfill_service ? [backfill_service] : [])]
        .map((s) => `---- ${s.name} (${s.logPath}) ----\n${s.tail(lines)}`)
        .join('\n');
    },
    async stop() {
      const results = {};
      if (backfill_service) results.backfill = await backfill_service.stop('SIGTERM');
      const fanouts = Object.keys(services).filter((name) => name.startsWith('fanout'));
      for (const name of [...fanouts, 'ingest', 'decode']) results[name] = await services[name].stop('SIGTERM');
      return results;
    },
  };
  for (const service of Object.values(services)) service.start();
  try {
    await waitReady(pipeline);
  } catch (err) {
    await pipeline.stop();
    throw new Error(`${err.message}\n${pipeline.tails()}`);
  }
  return pipeline;
}

export async function httpGet(url, timeoutMs = 2_000) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    return { status: 0, text: String(err?.message ?? err) };
  }
}

export async function metricValue(baseUrl, name) {
  const { status, text } = await httpGet(`${baseUrl}/metrics`);
  if (status !== 200) return null;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : null;
}

// Ready: all three alive, decode serving (/healthz), ingest connected upstream (it connects only
// once decode has sent its resume), fanout answering `GET /`. (decode's /readyz turns 200 only
// with the first frame of a stream, and a quiet PDS sends none.)
export async function waitReady(p, timeoutMs = 30_000) {
  const dead = () => Object.values(p.services).find((s) => !s.running);
  let last = {};
  await waitFor(
    async () => {
      const d = dead();
      if (d) throw new Error(`${d.name} exited during start-up: ${JSON.stringify(d.exits.at(-1))}`);
      const [decode, connected, ...fanouts] = await Promise.all([
        httpGet(`${p.metrics.decode}/healthz`),
        metricValue(p.metrics.ingest, 'jetstream_ingest_upstream_connected'),
        ...p.replicas.map((r) => httpGet(`${r.http}/`)),
      ]);
      last = { decodeHealthz: decode, ingestUpstreamConnected: connected, fanoutRoot: fanouts };
      return decode.status === 200 && connected === 1 && fanouts.every((f) => f.status === 200);
    },
    {
      timeoutMs,
      intervalMs: 100,
      what: () => `the pipeline to be ready (decode /healthz 200, ingest connected upstream, fanout GET / 200); last: ${JSON.stringify(last)}`,
    },
  );
}

// waitDecodeReady(p): after a restart, decode follows ingest again (/readyz: true once the first
// frame of the resumed stream arrived, so only call this when upstream has frames to replay).
export async function waitDecodeReady(p, timeoutMs = 30_000) {
  await waitFor(
    async () => {
      if (!p.services.decode.running) {
        throw new Error(`decode exited after its restart: ${JSON.stringify(p.services.decode.exits.at(-1))}`);
      }
      return (await httpGet(`${p.metrics.decode}/readyz`)).status === 200;
    },
    { timeoutMs, intervalMs: 100, what: 'decode /readyz after the restart' },
  );
}
