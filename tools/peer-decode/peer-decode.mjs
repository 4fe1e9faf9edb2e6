#!/usr/bin/env node
// The JavaScript peer of `jetstream-frames decode`: the same capture file in, one v1-shaped JSON
// line per event out. Two ways, both checking every block's CID (sha256) as v1 does:
//   --atproto (default): the way a Node.js firehose consumer does it with atproto's own packages
//     (@atproto/xrpc-server's frame parser, @atproto/repo's CAR reader, cborToLexRecord,
//     @atproto/lex-json);
//   --lean: the fastest JavaScript we could write for the job: cborg straight (CIDs left as bytes,
//     written with multiformats' base32 when needed), a hand-written CAR walk, node:crypto's
//     sha256, JSON.stringify.
// scripts/bench-decode.sh runs jetstream-frames and both peers on the same file and prints the
// ratios. It is a yardstick, not a second implementation: its lines have v1's shape and fields
// but not v1's exact bytes (key order inside records, escaping), and it reads the whole capture
// at once (the most generous reading a peer can get).
//
// usage: node tools/peer-decode/peer-decode.mjs [--atproto|--lean] FILE > OUT  (summary on stderr)
// The packages come from tests/e2e/node_modules (bash tests/e2e/install.sh installs them).
import { createHash } from 'node:crypto';
import { readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const mode = args[0] === '--lean' || args[0] === '--atproto' ? args.shift() : '--atproto';
const path = args[0];
if (!path || args.length !== 1) {
  process.stderr.write('usage: peer-decode.mjs [--atproto|--lean] FILE\n');
  process.exit(2);
}

const require = createRequire(new URL('../../tests/e2e/package.json', import.meta.url));
let Frame, readCar, cborToLexRecord, lexStringify, cborg, base32Codec;
try {
  ({ Frame } = require('@atproto/xrpc-server/dist/stream/frames.js'));
  ({ readCar, cborToLexRecord } = require('@atproto/repo'));
  ({ lexStringify } = require('@atproto/lex-json'));
  ({ base32: base32Codec } = require('multiformats/bases/base32'));
  cborg = await import(pathToFileURL(new URL('../../tests/e2e/node_modules/cborg/cborg.js',
    import.meta.url).pathname).href);
} catch (error) {
  process.stderr.write(`peer-decode: ${error.message}\n(run: bash tests/e2e/install.sh)\n`);
  process.exit(2);
}

const capture = readFileSync(path);
const kOutputBlock = 1 << 20;
let output = [];
let outputBytes = 0;
const emit = (line) => {
  output.push(line);
  outputBytes += line.length + 1;
  if (outputBytes >= kOutputBlock) flush();
};
const flush = () => {
  if (output.length) writeSync(1, output.join('\n') + '\n');
  output = [];
  outputBytes = 0;
};

let frames = 0;
let events = 0;
let dropped = 0;
let timeUs = 0;

// ---- --atproto: atproto's own packages.
async function decodeAtproto(bytes) {
  let frame;
  try {
    frame = Frame.fromBytes(bytes);
  } catch {
    ++dropped;
    return;
  }
  if (!frame.isMessage()) return;
  const body = frame.body;
  const type = frame.header.t;
  if (type === '#commit') {
    let blocks;
    try {
      ({ blocks } = await readCar(body.blocks));
    } catch {
      ++dropped;
      return;
    }
    for (const op of body.ops) {
      const [collection, rkey] = op.path.split('/');
      const commit = { rev: body.rev, operation: op.action, collection, rkey };
      if (op.action !== 'delete') {
        const recordBytes = op.cid && blocks.get(op.cid);
        if (!recordBytes) {
          ++dropped;
          continue;
        }
        commit.record = cborToLexRecord(recordBytes);
        commit.cid = op.cid.toString();
      }
      emit(lexStringify({ did: body.repo, time_us: ++timeUs, kind: 'commit', commit }));
      ++events;
    }
  } else {
    emitOther(type, body);
  }
}

function emitOther(type, body) {
  if (type === '#identity') {
    const identity = { did: body.did, handle: body.handle, seq: body.seq, time: body.time };
    emit(JSON.stringify({ did: body.did, time_us: ++timeUs, kind: 'identity', identity }));
    ++events;
  } else if (type === '#account') {
    const account = { active: body.active, did: body.did, seq: body.seq, status: body.status,
      time: body.time };
    emit(JSON.stringify({ did: body.did, time_us: ++timeUs, kind: 'account', account }));
    ++events;
  }
}

// ---- --lean: cborg, a hand-written CAR walk, node:crypto, multiformats' base32.
// CIDs as text: multiformats' base32 (multibase prefix 'b' included), as JavaScript code does.
const base32 = (bytes) => base32Codec.encode(bytes);
class Link {
  constructor(bytes) { this.bytes = bytes; }  // the CID, without tag 42's leading 0x00
  get key() { return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length).toString('latin1'); }
  toJSON() { return { $link: base32(this.bytes) }; }
}
const tags = [];
tags[42] = (decode) => new Link(decode().subarray(1));
const cborOptions = { tags, useMaps: false };
const replacer = (key, value) =>
  value instanceof Uint8Array ? { $bytes: Buffer.from(value).toString('base64').replace(/=+$/, '') } : value;

function varint(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at.i++];
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return value;
    shift += 7;
  }
}
/// CID key -> block bytes, every block's sha256 checked; null when the CAR is broken.
function readCarLean(car) {
  const at = { i: 0 };
  const headerLength = varint(car, at);
  at.i += headerLength;
  const blocks = new Map();
  while (at.i < car.length) {
    const length = varint(car, at);
    const end = at.i + length;
    const cidStart = at.i;
    if (varint(car, at) !== 1) return null;  // CIDv1
    varint(car, at);  // codec
    if (varint(car, at) !== 0x12) return null;  // sha2-256
    const digestLength = varint(car, at);
    const digest = car.subarray(at.i, at.i + digestLength);
    at.i += digestLength;
    const key = Buffer.from(car.buffer, car.byteOffset + cidStart, at.i - cidStart).toString('latin1');
    const data = car.subarray(at.i, end);
    if (!createHash('sha256').update(data).digest().equals(digest)) return null;
    blocks.set(key, data);
    at.i = end;
  }
  return blocks;
}

function decodeLean(bytes) {
  let header, body;
  try {
    const [h, rest] = cborg.decodeFirst(bytes, cborOptions);
    header = h;
    body = cborg.decode(rest, cborOptions);
  } catch {
    ++dropped;
    return;
  }
  if (header.op !== 1) return;
  if (header.t !== '#commit') return emitOther(header.t, body);
  const blocks = readCarLean(body.blocks);
  if (!blocks) {
    ++dropped;
    return;
  }
  for (const op of body.ops) {
    const slash = op.path.indexOf('/');
    const commit = { rev: body.rev, operation: op.action, collection: op.path.slice(0, slash),
      rkey: op.path.slice(slash + 1) };
    if (op.action !== 'delete') {
      const recordBytes = op.cid && blocks.get(op.cid.key);
      if (!recordBytes) {
        ++dropped;
        continue;
      }
      commit.record = cborg.decode(recordBytes, cborOptions);
      commit.cid = base32(op.cid.bytes);
    }
    emit(JSON.stringify({ did: body.repo, time_us: ++timeUs, kind: 'commit', commit }, replacer));
    ++events;
  }
}

for (let offset = 0; offset < capture.length; ) {
  if (capture.length - offset < 4) throw new Error(`truncated capture after ${frames} frames`);
  const length = capture.readUInt32LE(offset);
  offset += 4;
  if (length > capture.length - offset) throw new Error(`truncated frame after ${frames} frames`);
  const bytes = capture.subarray(offset, offset + length);
  offset += length;
  ++frames;
  if (mode === '--lean') {
    decodeLean(bytes);
  } else {
    await decodeAtproto(bytes);
  }
}
flush();
process.stderr.write(`frames: ${frames}\nevents: ${events}\ndrops: ${dropped}\n`);
