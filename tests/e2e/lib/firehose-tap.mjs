// A direct subscriber of the PDS's com.atproto.sync.subscribeRepos, independent of the pipeline:
// it decodes each frame (DAG-CBOR header + body, with cborg) into a small summary, so that the
// scenario's expectations can be checked against what the PDS really emitted, and so that the
// upstream `seq` and `time` of identity and account events are known.
import { decode, decodeFirst } from 'cborg';
import WebSocket from 'ws';
import { waitFor } from './util.mjs';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(bytes) {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

// DAG-CBOR tag 42: a CID as bytes with a leading 0x00 (identity multibase); its string form is
// multibase base32 ('b' prefix) of the CID bytes.
export function cidTagToString(bytes) {
  return `b${base32(bytes.subarray(1))}`;
}

const TAGS = [];
// cborg 6 hands a tag decoder a function that reads the tagged value (call it once).
TAGS[42] = (decodeValue) => ({ $cid: cidTagToString(decodeValue()) });

export function decodeFrame(buf) {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  const [header, rest] = decodeFirst(bytes, { tags: TAGS });
  const body = decode(rest, { tags: TAGS });
  return { header, body };
}

// summarize(frame) -> {seq, type, did, ...} for the types the pipeline cares about.
export function summarize({ header, body }) {
  if (header.op !== 1) return { type: 'error', error: body.error, message: body.message };
  const type = header.t;
  const base = { seq: body.seq, type, time: body.time };
  switch (type) {
    case '#commit':
      return {
        ...base,
        did: body.repo,
        rev: body.rev,
        commit: body.commit?.$cid,
        tooBig: body.tooBig,
        ops: (body.ops ?? []).map((op) => ({
          action: op.action,
          path: op.path,
          cid: op.cid ? op.cid.$cid : null,
        })),
      };
    case '#identity':
      return { ...base, did: body.did, handle: body.handle };
    case '#account':
      return { ...base, did: body.did, active: body.active, status: body.status };
    case '#sync':
      return { ...base, did: body.did, rev: body.rev };
    default:
      return { ...base, did: body.did ?? body.repo };
  }
}

// openTap(firehoseUrl) -> {frames, raw, capture(), close(), waitForSeq(seq)}; connects live (no
// cursor).
export async function openTap(url, { timeoutMs = 10_000 } = {}) {
  const frames = [];
  const raw = [];
  const errors = [];
  const ws = new WebSocket(url);
  ws.binaryType = 'nodebuffer';
  ws.on('message', (data) => {
    raw.push(Buffer.from(data));
    try {
      frames.push(summarize(decodeFrame(data)));
    } catch (err) {
      errors.push(String(err?.message ?? err));
    }
  });
  ws.on('error', (err) => errors.push(String(err?.message ?? err)));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`firehose tap: no open within ${timeoutMs} ms`)), timeoutMs);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  return {
    frames,
    raw,
    errors,
    // capture(): the frames as a `.frames` capture ([u32 LE length][frame]…, as ../shared/corpus)
    capture: () => Buffer.concat(raw.flatMap((f) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(f.length);
      return [len, f];
    })),
    lastSeq: () => (frames.length ? frames[frames.length - 1].seq : 0),
    waitForSeq: (seq, ms = 10_000) =>
      waitFor(() => frames.some((f) => f.seq >= seq), {
        timeoutMs: ms,
        what: `PDS firehose frame seq ${seq}`,
      }),
    close: () => ws.terminate(),
  };
}
