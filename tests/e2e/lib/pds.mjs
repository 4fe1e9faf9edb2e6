// Harness side of the PDS: starts lib/pds-server.mjs as a child process, waits for its ready line,
// and talks to it through plain XRPC over fetch (no @atproto/api).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor, withTimeout } from './util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ADMIN_PASSWORD = 'admin-pass';

export class XrpcError extends Error {
  constructor(nsid, status, body) {
    super(`${nsid}: HTTP ${status} ${typeof body === 'string' ? body : JSON.stringify(body)}`);
    this.status = status;
    this.body = body;
  }
}

// startPds({pdsPort, plcPort, externalPlc, log}) -> {url, firehose, stop(), guardViolations(), child}
// externalPlc: the PLC directory on plcPort is another PDS launcher's (two PDSes share one).
export async function startPds({ pdsPort, plcPort, externalPlc = false, log = () => {}, timeoutMs = 60_000 }) {
  const child = spawn(
    process.execPath,
    [path.join(HERE, 'pds-server.mjs'), '--port', String(pdsPort), '--plc-port', String(plcPort),
      '--admin-password', ADMIN_PASSWORD, ...(externalPlc ? ['--external-plc'] : [])],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LOG_ENABLED: 'false' } },
  );
  const violations = [];
  let ready = null;
  let stopped = null;
  const answers = [];  // command answers ({event: 'rotated' | 'rotate-failed', ...})
  let stdoutBuf = '';
  let stderrTail = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    stdoutBuf += chunk;
    let nl;
    while ((nl = stdoutBuf.indexOf('\n')) >= 0) {
      const line = stdoutBuf.slice(0, nl);
      stdoutBuf = stdoutBuf.slice(nl + 1);
      try {
        const msg = JSON.parse(line);
        if (msg.event === 'ready') ready = msg;
        if (msg.event === 'stopped') stopped = msg;
        if (msg.event === 'rotated' || msg.event === 'rotate-failed') answers.push(msg);
      } catch {
        log(`[pds] ${line}`);
      }
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    for (const line of chunk.split('\n')) {
      if (!line) continue;
      try {
        const msg = JSON.parse(line);
        if (msg.guard_violation) {
          violations.push(msg.guard_violation);
          continue;
        }
      } catch {
        // not a guard line
      }
      stderrTail = (stderrTail + line + '\n').slice(-4000);
      log(`[pds] ${line}`);
    }
  });
  // Whatever way this process ends, the PDS ends with it.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      process.off('exit', killOnExit);
      exited = { code, signal };
      resolve(exited);
    });
  });
  try {
    await waitFor(() => ready !== null || exited !== null, {
      timeoutMs,
      what: 'the PDS ready line',
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${err.message}; PDS stderr:\n${stderrTail}`);
  }
  if (!ready) throw new Error(`the PDS exited before it was ready (${JSON.stringify(exited)}):\n${stderrTail}`);

  return {
    url: `http://127.0.0.1:${pdsPort}`,
    plc: ready.plc,
    firehose: ready.firehose,
    child,
    guardViolations: () => violations.slice(),
    // A new #atproto signing key for `did`, written to the PLC directory and used by the PDS
    // from now on; an #identity event follows on the firehose. With {publish: false} only the
    // PDS changes key (the directory still lists the old one). Resolves to the new did:key.
    async rotateSigningKey(did, { publish = true } = {}) {
      child.stdin.write(`${JSON.stringify({ cmd: 'rotate-signing-key', did, publish })}\n`);
      await waitFor(() => answers.some((a) => a.did === did), { timeoutMs: 20_000, what: `the key rotation of ${did}` });
      const answer = answers.splice(answers.findIndex((a) => a.did === did), 1)[0];
      if (answer.event !== 'rotated') throw new Error(`key rotation failed: ${answer.error}`);
      return answer.key;
    },
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const result = await withTimeout(exitPromise, 15_000, 'PDS shutdown').catch(() => null);
      if (!result) {
        child.kill('SIGKILL');
        await exitPromise;
      }
      return { ...exited, stopped };
    },
  };
}

// xrpc(base, nsid, {body, query, auth, bytes, contentType, method, noBody}) -> parsed JSON or null
export async function xrpc(base, nsid, opts = {}) {
  const url = new URL(`/xrpc/${nsid}`, base);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, String(v));
  const headers = {};
  if (opts.auth) headers.authorization = opts.auth;
  let body;
  let method = opts.method ?? 'POST';
  if (opts.bytes) {
    body = opts.bytes;
    headers['content-type'] = opts.contentType ?? 'application/octet-stream';
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  } else if (!opts.noBody && method === 'POST') {
    method = 'POST';
  }
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // keep the text
  }
  if (!res.ok) throw new XrpcError(nsid, res.status, parsed);
  return parsed;
}

export const bearer = (account) => `Bearer ${account.accessJwt}`;
export const adminAuth = () =>
  `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
