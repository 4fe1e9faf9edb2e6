#!/usr/bin/env node
// The JavaScript peer of jetstream-fanout for scripts/bench-fanout.sh: the minimal fanout a user
// would write with npm `ws`. One upstream connection (any Jetstream URL: the bench points it at
// jetstream-fanout itself), and each event it receives sent as it came (one Buffer, the same for
// every client; ws frames it per client) to every connected client; no filters, no cursor, no
// slow-client policy. The bench puts 1,000 jetstream-loadgen clients on it and on
// jetstream-fanout with the same load and compares deliveries per CPU second. A yardstick, not a
// second implementation.
//
// usage: node tools/peer-fanout/peer-fanout.mjs --upstream ws://HOST:PORT/subscribe --listen PORT
// The `ws` package comes from tests/e2e/node_modules (bash tests/e2e/install.sh installs it).
import { createRequire } from 'node:module';

const args = process.argv.slice(2);
const option = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const upstreamUrl = option('--upstream');
const port = Number(option('--listen'));
if (!upstreamUrl || !Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: peer-fanout.mjs --upstream ws://HOST:PORT/subscribe --listen PORT\n');
  process.exit(2);
}

const require = createRequire(new URL('../../tests/e2e/package.json', import.meta.url));
let WebSocket, WebSocketServer;
try {
  ({ WebSocket, WebSocketServer } = require('ws'));
} catch (error) {
  process.stderr.write(`peer-fanout: ${error.message}\n(run: bash tests/e2e/install.sh)\n`);
  process.exit(1);
}

const server = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
let events = 0;
let sends = 0;
const connect = () => {
  const upstream = new WebSocket(upstreamUrl, { perMessageDeflate: false });
  upstream.on('message', (data, isBinary) => {
    events += 1;
    for (const client of server.clients) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
        sends += 1;
      }
    }
  });
  upstream.on('close', () => setTimeout(connect, 500));
  upstream.on('error', () => {});
};
server.on('listening', () => {
  process.stderr.write(`peer-fanout: listening on 127.0.0.1:${port}, upstream ${upstreamUrl}\n`);
  connect();
});
const report = () => process.stderr.write(`peer-fanout: ${events} events received, ${sends} sends\n`);
process.on('SIGTERM', () => {
  report();
  process.exit(0);
});
process.on('SIGINT', () => {
  report();
  process.exit(0);
});
