#!/usr/bin/env node
// A real atproto PDS (@atproto/pds, the reference implementation from npm) next to an in-memory
// did:plc directory (@did-plc/server with its mock database, as @atproto/dev-env does), both on
// 127.0.0.1 only, with the loopback guard of guard.mjs installed before either is loaded.
//
//   node tests/e2e/lib/pds-server.mjs [--port 2583] [--plc-port 2582] [--data DIR]
//                                     [--admin-password admin-pass] [--external-plc]
//
// --external-plc: the directory on --plc-port is another launcher's (a second PDS sharing it).
//
// Commands, one JSON line each on stdin (answered by one JSON line on stdout):
//   {"cmd":"rotate-signing-key","did":"did:plc:...","publish":true}
//     → {"event":"rotated","did":…,"key":"did:key:…"}
//     a key rotation as an account migration does it: a new #atproto key is written to the
//     directory (an operation signed by the PDS's rotation key), the PDS signs with it from then
//     on, and an #identity event goes out on the firehose. With "publish": false only the PDS
//     changes key: it then signs with a key its directory does not list (a forger's position).
//
// Prints one JSON line `{"event":"ready",...}` on stdout once both serve (the PDS's firehose is
// `ws://127.0.0.1:<port>/xrpc/com.atproto.sync.subscribeRepos`), then runs until SIGINT/SIGTERM,
// when it stops both servers, removes its temporary data folder (not one given with --data) and
// exits 0. Guard violations are printed on stderr as JSON lines `{"guard_violation":…}` and make
// the exit status 3. Accounts use `.test` handles, so no handle ever needs DNS; there is no
// appview, moderation service, crawler or mail server configured.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { installLoopbackGuard, violations } from './guard.mjs';

installLoopbackGuard();

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '2583' },
    'plc-port': { type: 'string', default: '2582' },
    data: { type: 'string' },
    'admin-password': { type: 'string', default: 'admin-pass' },
    'external-plc': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  process.stdout.write(
    'usage: node pds-server.mjs [--port 2583] [--plc-port 2582] [--data DIR] [--admin-password P]\n',
  );
  process.exit(0);
}

const port = Number(opts.port);
const plcPort = Number(opts['plc-port']);
const ownDataDir = !opts.data;
const dataDir = opts.data
  ? path.resolve(opts.data)
  : fs.mkdtempSync(path.join(os.tmpdir(), 'jetstream-e2e-pds-'));
fs.mkdirSync(dataDir, { recursive: true });

function fail(message) {
  process.stderr.write(`pds-server: ${message}\n`);
  if (ownDataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  process.exit(1);
}

// Imported only now, so that every module-level side effect already runs under the guard.
const { PlcServer, Database: PlcDatabase } = await import('@did-plc/server');
const { PDS, envToCfg, envToSecrets, readEnv } = await import('@atproto/pds');
const { Secp256k1Keypair } = await import('@atproto/crypto');

let plc;
let pds;
try {
  if (!opts['external-plc']) {
    plc = PlcServer.create({ db: PlcDatabase.mock(), port: plcPort });
    await plc.start();
  }

  const rotationKey = await Secp256k1Keypair.create({ exportable: true });
  const env = {
    ...readEnv(),
    port,
    hostname: 'localhost',
    devMode: true,
    inviteRequired: false,
    dataDirectory: dataDir,
    blobstoreDiskLocation: path.join(dataDir, 'blobs'),
    didPlcUrl: `http://localhost:${plcPort}`,
    serviceHandleDomains: ['.test'],
    jwtSecret: crypto.randomBytes(16).toString('hex'),
    dpopSecret: crypto.randomBytes(32).toString('hex'),
    adminPassword: opts['admin-password'],
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotationKey.export()).toString('hex'),
    crawlers: [],
    rateLimitsEnabled: false,
    // nothing outside this machine: no appview, moderation or report service, no mail
    bskyAppViewUrl: undefined,
    bskyAppViewDid: undefined,
    modServiceUrl: undefined,
    modServiceDid: undefined,
    reportServiceUrl: undefined,
    reportServiceDid: undefined,
    emailSmtpUrl: undefined,
    moderationEmailSmtpUrl: undefined,
  };
  pds = await PDS.create(envToCfg(env), envToSecrets(env));
  await pds.start();
} catch (err) {
  fail(`start failed: ${err?.stack ?? err}`);
}

process.stdout.write(
  `${JSON.stringify({
    event: 'ready',
    pid: process.pid,
    pds: `http://127.0.0.1:${port}`,
    plc: `http://127.0.0.1:${plcPort}`,
    firehose: `ws://127.0.0.1:${port}/xrpc/com.atproto.sync.subscribeRepos`,
    dataDir,
  })}\n`,
);

async function rotateSigningKey(did, publish) {
  const key = await Secp256k1Keypair.create({ exportable: true });
  if (publish) await pds.ctx.plcClient.updateAtprotoKey(did, pds.ctx.plcRotationKey, key.did());
  const { keyLocation } = await pds.ctx.actorStore.getLocation(did);
  fs.writeFileSync(keyLocation, await key.export());
  if (publish) {
    const account = await pds.ctx.accountManager.getAccount(did);
    await pds.ctx.sequencer.sequenceIdentityEvt(did, account?.handle ?? undefined);
  }
  return key.did();
}

let commands = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  commands += chunk;
  let nl;
  while ((nl = commands.indexOf('\n')) >= 0) {
    const line = commands.slice(0, nl);
    commands = commands.slice(nl + 1);
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      process.stderr.write(`pds-server: not a command: ${line.slice(0, 200)}\n`);
      continue;
    }
    if (command.cmd === 'rotate-signing-key') {
      rotateSigningKey(command.did, command.publish !== false).then(
        (key) => process.stdout.write(`${JSON.stringify({ event: 'rotated', did: command.did, key })}\n`),
        (err) => process.stdout.write(`${JSON.stringify({ event: 'rotate-failed', did: command.did, error: String(err?.stack ?? err) })}\n`),
      );
    }
  }
});

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  const timer = setTimeout(() => {
    process.stderr.write('pds-server: shutdown took over 10s; exiting anyway\n');
    process.exit(violations().length > 0 ? 3 : 0);
  }, 10_000);
  timer.unref();
  try {
    await pds?.destroy();
  } catch (err) {
    process.stderr.write(`pds-server: PDS shutdown: ${err?.message ?? err}\n`);
  }
  try {
    await plc?.destroy();
  } catch (err) {
    process.stderr.write(`pds-server: PLC shutdown: ${err?.message ?? err}\n`);
  }
  if (ownDataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  const count = violations().length;
  process.stdout.write(`${JSON.stringify({ event: 'stopped', signal, guardViolations: count })}\n`);
  process.exit(count > 0 ? 3 : 0);
}
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
