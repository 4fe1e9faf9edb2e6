// The loopback guard of lib/guard.mjs in a child process: a listen without a host (or on 0.0.0.0)
// binds 127.0.0.1, and a connect to a non-loopback address is refused before any packet is sent
// and counted as a violation. Only addresses that stay on this machine are used (0.0.0.0 reaches
// the local host on Linux even if the guard failed), so the test itself can never send traffic out.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const PROBE = `
import net from 'node:net';
import { installLoopbackGuard, violations } from ${JSON.stringify(path.join(HERE, 'lib', 'guard.mjs'))};
installLoopbackGuard({ onViolation: () => {} });
const listen = (...args) => new Promise((resolve) => { const s = net.createServer(); s.listen(...args, () => resolve(s)); });
const a = await listen(0);
const b = await listen({ port: 0, host: '0.0.0.0' });
const c = await listen(0, '::');
const refused = await new Promise((resolve) => {
  const sock = net.connect({ host: '0.0.0.0', port: a.address().port });
  sock.on('connect', () => { sock.destroy(); resolve('connected'); });
  sock.on('error', (err) => resolve(err.code));
});
const allowed = await new Promise((resolve) => {
  const sock = net.connect(a.address().port, '127.0.0.1');
  sock.on('connect', () => { sock.destroy(); resolve('connected'); });
  sock.on('error', (err) => resolve(err.code));
});
console.log(JSON.stringify({
  listens: [a, b, c].map((s) => s.address().address),
  refused, allowed, violations: violations().map((v) => v.kind + ' ' + v.target),
}));
for (const s of [a, b, c]) s.close();
`;

test('loopback guard: listens bind 127.0.0.1, non-loopback connects are refused and counted', () => {
  const out = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', PROBE], { timeout: 20_000 }).toString(),
  );
  assert.deepEqual(out.listens, ['127.0.0.1', '127.0.0.1', '127.0.0.1']);
  assert.equal(out.refused, 'EACCES');
  assert.equal(out.allowed, 'connected');
  assert.deepEqual(out.violations, ['connect 0.0.0.0']);
});
