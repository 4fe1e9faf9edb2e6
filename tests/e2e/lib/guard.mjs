// Loopback-only guard for every process of the e2e harness that runs third-party servers.
//
// Installed before anything else is imported, it makes sure nothing this process does can reach
// or be reached from outside the machine:
//   - every `net.Server#listen` binds a loopback address: a listen without a host, or on a
//     wildcard / non-loopback host, is rewritten to 127.0.0.1 (the PDS and the PLC server both
//     call `app.listen(port)`, which would otherwise bind all interfaces);
//   - every `net.Socket#connect` to a host that is not loopback is refused (the socket fails with
//     EACCES before any packet is sent); this covers http(s), fetch (undici), tls and ws;
//   - `dns.lookup` answers only `localhost` and IP literals (a non-loopback literal is still
//     refused by connect); every other name fails with ENOTFOUND; the `dns.resolve*` family and
//     `dns.promises` do the same, so no DNS query ever leaves the process.
// Every refusal is a violation: counted, reported to `onViolation` (default: a JSON line on
// stderr) and available from `violations()`. The harness fails a run that had any.
import dns from 'node:dns';
import net from 'node:net';

const LOOPBACK_HOST = '127.0.0.1';
const recorded = [];
let reporter = (v) => process.stderr.write(`${JSON.stringify({ guard_violation: v })}\n`);
let installed = false;

export function isLoopbackHost(host) {
  if (host === undefined || host === null) return false;
  const h = String(host).toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (h.startsWith('::ffff:')) return isLoopbackHost(h.slice(7));
  return net.isIPv4(h) && h.startsWith('127.');
}

function violation(kind, target) {
  const v = { kind, target: String(target), at: new Date().toISOString() };
  recorded.push(v);
  try {
    reporter(v);
  } catch {
    // reporting must never break the guarded call path
  }
  return v;
}

export function violations() {
  return recorded.slice();
}

function refusedError(syscall, target, code = 'EACCES') {
  const err = new Error(`loopback guard: ${syscall} ${target} refused (only loopback is allowed)`);
  err.code = code;
  err.syscall = syscall;
  err.hostname = target;
  return err;
}

// net.Server#listen(port?, host?, backlog?, cb?) | listen(options, cb?) | listen(path, cb?) |
// listen(handle, cb?)
function loopbackListenArgs(args) {
  if (args.length === 0 || typeof args[0] === 'function') {
    return [0, LOOPBACK_HOST, ...args];
  }
  const first = args[0];
  if (first !== null && typeof first === 'object') {
    if (first._handle || first.fd !== undefined || first.path !== undefined) return args; // handle or unix socket
    const opts = { ...first };
    if (!isLoopbackHost(opts.host)) opts.host = LOOPBACK_HOST;
    return [opts, ...args.slice(1)];
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return args; // unix socket path
  // numeric port (number or digit string)
  const rest = args.slice(1);
  if (typeof rest[0] === 'string' || rest[0] === null || rest[0] === undefined) {
    if (rest.length > 0 && typeof rest[0] !== 'function') {
      if (!isLoopbackHost(rest[0])) rest[0] = LOOPBACK_HOST;
      return [first, ...rest];
    }
  }
  return [first, LOOPBACK_HOST, ...rest];
}

// net.Socket#connect(options, cb?) | connect(port, host?, cb?) | connect(path, cb?); node's
// internals sometimes pass the normalized [options, cb] array as the single argument.
function connectTarget(args) {
  let a = args;
  if (a.length === 1 && Array.isArray(a[0])) a = a[0];
  const first = a[0];
  if (first !== null && typeof first === 'object') {
    if (first.path !== undefined) return null; // unix socket
    return first.host ?? 'localhost';
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return null; // unix socket path
  return typeof a[1] === 'string' ? a[1] : 'localhost';
}

export function installLoopbackGuard({ onViolation } = {}) {
  if (onViolation) reporter = onViolation;
  if (installed) return;
  installed = true;

  const originalListen = net.Server.prototype.listen;
  net.Server.prototype.listen = function guardedListen(...args) {
    return originalListen.apply(this, loopbackListenArgs(args));
  };

  const originalConnect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function guardedConnect(...args) {
    const host = connectTarget(args);
    if (host !== null && !isLoopbackHost(host)) {
      violation('connect', host);
      const err = refusedError('connect', host);
      process.nextTick(() => this.destroy(err));
      return this;
    }
    return originalConnect.apply(this, args);
  };

  const originalLookup = dns.lookup;
  const guardedLookup = function guardedLookup(hostname, options, callback) {
    const cb = typeof options === 'function' ? options : callback;
    const opts = typeof options === 'object' && options !== null ? options : {};
    const family = typeof options === 'number' ? options : opts.family;
    if (net.isIP(hostname)) return originalLookup.call(dns, hostname, options, callback);
    if (String(hostname).toLowerCase() === 'localhost') {
      const useV6 = family === 6;
      const address = useV6 ? '::1' : LOOPBACK_HOST;
      const fam = useV6 ? 6 : 4;
      process.nextTick(() => {
        if (opts.all) cb(null, [{ address, family: fam }]);
        else cb(null, address, fam);
      });
      return {};
    }
    violation('dns.lookup', hostname);
    process.nextTick(() => cb(refusedError('getaddrinfo', hostname, 'ENOTFOUND')));
    return {};
  };
  dns.lookup = guardedLookup;

  const refuseResolve = (name) =>
    function refusedResolve(hostname, ...rest) {
      const cb = rest.find((r) => typeof r === 'function');
      violation(`dns.${name}`, hostname);
      const err = refusedError(`query${name}`, hostname, 'ENOTFOUND');
      if (cb) process.nextTick(() => cb(err));
      return {};
    };
  const refuseResolvePromise = (name) =>
    async function refusedResolvePromise(hostname) {
      violation(`dns.promises.${name}`, hostname);
      throw refusedError(`query${name}`, hostname, 'ENOTFOUND');
    };
  const resolvers = [
    'resolve', 'resolve4', 'resolve6', 'resolveAny', 'resolveCaa', 'resolveCname', 'resolveMx',
    'resolveNaptr', 'resolveNs', 'resolvePtr', 'resolveSoa', 'resolveSrv', 'resolveTxt', 'reverse',
  ];
  for (const name of resolvers) {
    if (typeof dns[name] === 'function') dns[name] = refuseResolve(name);
    if (dns.promises && typeof dns.promises[name] === 'function') {
      dns.promises[name] = refuseResolvePromise(name);
    }
  }
  if (dns.promises) {
    dns.promises.lookup = (hostname, options) =>
      new Promise((resolve, reject) => {
        guardedLookup(hostname, options ?? {}, (err, address, family) => {
          if (err) reject(err);
          else if (Array.isArray(address)) resolve(address);
          else resolve({ address, family });
        });
      });
  }
  // A resolver instance (`new dns.Resolver()`) would send its own queries: refuse those too.
  if (dns.Resolver) {
    for (const name of resolvers) {
      if (typeof dns.Resolver.prototype[name] === 'function') {
        dns.Resolver.prototype[name] = refuseResolve(name);
      }
    }
  }
  if (dns.promises && dns.promises.Resolver) {
    for (const name of resolvers) {
      if (typeof dns.promises.Resolver.prototype[name] === 'function') {
        dns.promises.Resolver.prototype[name] = refuseResolvePromise(name);
      }
    }
  }
}
