// Small helpers shared by the harness: bounded waits, free loopback ports.
import fs from 'node:fs';
import net from 'node:net';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// waitFor(predicate, {timeoutMs, intervalMs, what}): polls until predicate() is truthy (it may be
// async); throws `timed out after N ms waiting for <what>` otherwise. Every wait of the suite is one
// of these, so nothing can hang the run.
export async function waitFor(predicate, { timeoutMs = 10_000, intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() >= deadline) {
      const detail = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${detail}`);
    }
    await sleep(intervalMs);
  }
}

export function withTimeout(promise, timeoutMs, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

// freePorts(n): n distinct TCP ports that were free on 127.0.0.1 a moment ago (all held open
// together while they are picked, so they differ from each other).
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = net.createServer();
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      servers.push(server);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

// waitListening(port): resolves once something accepts TCP connections on 127.0.0.1:port. A port
// taken from freePorts() is free again until its server binds it: wait for that before asking
// freePorts() for more, or the next pick may be the same port.
export async function waitListening(port, { timeoutMs = 20_000 } = {}) {
  const accepts = () =>
    new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  await waitFor(accepts, { timeoutMs, intervalMs: 50, what: `a server listening on 127.0.0.1:${port}` });
}

// listeningSockets(pid) -> [{address, port}]: the TCP sockets in LISTEN state that process `pid`
// holds, read from /proc (Linux). Used to prove the PDS and PLC servers bind loopback only.
export function listeningSockets(pid) {
  const inodes = new Set();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // fd closed meanwhile
    }
  }
  const out = [];
  for (const [file, v6] of [['tcp', false], ['tcp6', true]]) {
    let table = '';
    try {
      table = fs.readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of table.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9])) continue;
      const [hexAddr, hexPort] = cols[1].split(':');
      out.push({ address: v6 ? ipv6FromProc(hexAddr) : ipv4FromProc(hexAddr), port: parseInt(hexPort, 16) });
    }
  }
  return out;
}

function ipv4FromProc(hex) {
  // little-endian 32-bit word
  return [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.');
}

function ipv6FromProc(hex) {
  // four little-endian 32-bit words
  const bytes = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let i = 3; i >= 0; i--) bytes.push(parseInt(word.slice(i * 2, i * 2 + 2), 16));
  }
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  const text = groups.join(':');
  return text === '0:0:0:0:0:0:0:1' ? '::1' : text.replace(/^0:0:0:0:0:ffff:/, '::ffff:');
}
