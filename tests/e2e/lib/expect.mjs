// Expected v1 events: the exact bytes a Jetstream v1 server sends for each recorded action, built
// independently of the C++ code from API.md's rules (Go encoding/json escaping, sorted keys, blob
// key order), and the comparisons the tests make against what clients received.

// ---- v1 JSON writer (API.md "Record conversion") -------------------------------------------

const HEX = '0123456789abcdef';

// Go encoding/json string escaping (HTML-safe, as v1): \" \\ \n \r \t, other C0 as \u00xx,
// < > & as \u003c \u003e \u0026, U+2028/U+2029 escaped, everything else raw, / not escaped.
export function goString(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || ch === '<' || ch === '>' || ch === '&') {
      out += `\\u00${HEX[c >> 4]}${HEX[c & 15]}`;
    } else if (c === 0x2028) out += '\\u2028';
    else if (c === 0x2029) out += '\\u2029';
    else out += ch;
  }
  return `${out}"`;
}

const byteOrder = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
const BLOB_KEYS = ['$type', 'ref', 'mimeType', 'size'];

// v1Json(value): the record as v1 writes it. The input is the atproto JSON form the record was
// written in (`{"$link"}` for CIDs, `{"$bytes"}` for bytes, blobs as returned by uploadBlob).
export function v1Json(value) {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`not atproto data: float ${value}`);
    return String(value);
  }
  if (typeof value === 'string') return goString(value);
  if (Array.isArray(value)) return `[${value.map(v1Json).join(',')}]`;
  if (typeof value === 'object') {
    const keys =
      value.$type === 'blob'
        ? BLOB_KEYS.filter((k) => k in value)
        : Object.keys(value).filter((k) => value[k] !== undefined).sort(byteOrder);
    return `{${keys.map((k) => `${goString(k)}:${v1Json(value[k])}`).join(',')}}`;
  }
  throw new Error(`not atproto data: ${typeof value}`);
}

export const TIME_US_HOLE = '<time_us>';

// eventTemplate(entry): the full v1 event JSON with `time_us` replaced by TIME_US_HOLE.
// Identity/account entries need `seq` and `time` (filled in from the PDS firehose).
export function eventTemplate(e) {
  const head = `{"did":${goString(e.did)},"time_us":${TIME_US_HOLE},"kind":"${e.kind}"`;
  if (e.kind === 'commit') {
    let body = `"rev":${goString(e.rev)},"operation":"${e.operation}","collection":${goString(e.collection)},"rkey":${goString(e.rkey)}`;
    if (e.operation !== 'delete') body += `,"record":${v1Json(e.record)},"cid":${goString(e.cid)}`;
    return `${head},"commit":{${body}}}`;
  }
  if (e.kind === 'identity') {
    const handle = e.handle !== undefined ? `,"handle":${goString(e.handle)}` : '';
    return `${head},"identity":{"did":${goString(e.did)}${handle},"seq":${e.seq},"time":${goString(e.time)}}}`;
  }
  if (e.kind === 'account') {
    const status = e.status !== undefined ? `,"status":${goString(e.status)}` : '';
    return `${head},"account":{"active":${e.active},"did":${goString(e.did)},"seq":${e.seq}${status},"time":${goString(e.time)}}}`;
  }
  throw new Error(`unknown kind ${e.kind}`);
}

const HEAD_RE = /^\{"did":"(?:[^"\\]|\\.)*","time_us":(\d+),/;

// splitTimeUs(json) -> {timeUs, template}: the event's time_us and its text with the hole.
export function splitTimeUs(json) {
  const m = HEAD_RE.exec(json);
  if (!m) return { timeUs: NaN, template: json };
  const start = m[0].length - m[1].length - 1;
  return {
    timeUs: Number(m[1]),
    template: json.slice(0, start) + TIME_US_HOLE + json.slice(start + m[1].length),
  };
}

// ---- the PDS firehose against the recorded actions ------------------------------------------

// firehoseEffects(frames): the v1-relevant effects of the PDS's frames, in seq order.
export function firehoseEffects(frames) {
  const out = [];
  for (const f of [...frames].sort((a, b) => a.seq - b.seq)) {
    if (f.type === '#commit') {
      if (f.tooBig) continue;
      for (const op of f.ops) {
        const slash = op.path.indexOf('/');
        out.push({
          kind: 'commit', seq: f.seq, did: f.did, operation: op.action,
          collection: op.path.slice(0, slash), rkey: op.path.slice(slash + 1), rev: f.rev, cid: op.cid,
        });
      }
    } else if (f.type === '#identity') {
      out.push({ kind: 'identity', seq: f.seq, did: f.did, handle: f.handle, time: f.time });
    } else if (f.type === '#account') {
      out.push({ kind: 'account', seq: f.seq, did: f.did, active: f.active, status: f.status, time: f.time });
    }
  }
  return out;
}

function describe(e) {
  if (!e) return '(nothing)';
  const { record, ...rest } = e;
  return JSON.stringify(rest);
}

// reconcile(expected, frames) -> {events, problems}: walks the recorded expectations and the
// PDS's effects side by side. Every field the PDS reports must agree (for commits: did, operation,
// collection, rkey, rev, cid; identity: did, handle; account: did, active, status). The returned
// events are the expectations completed with the upstream seq/time, each with its `template`.
export function reconcile(expected, frames) {
  const effects = firehoseEffects(frames);
  const problems = [];
  const events = [];
  const n = Math.max(expected.length, effects.length);
  for (let i = 0; i < n; i++) {
    const want = expected[i];
    const got = effects[i];
    if (!want || !got) {
      problems.push(`#${i}: expected ${describe(want)}, the PDS emitted ${describe(got)}`);
      continue;
    }
    const fields = {
      commit: ['did', 'operation', 'collection', 'rkey', 'rev', 'cid'],
      identity: ['did', 'handle'],
      account: ['did', 'active', 'status'],
    }[want.kind];
    const wantCmp = { ...want, cid: want.cid ?? null };
    const bad =
      want.kind !== got.kind ||
      fields.some((k) => (k === 'cid' ? wantCmp.cid !== got.cid : want[k] !== got[k]));
    if (bad) {
      problems.push(`#${i} (${want.step}): expected ${describe(want)}, the PDS emitted ${describe(got)}`);
      continue;
    }
    const event = { ...want, seq: got.seq, time: got.time };
    event.template = eventTemplate(event);
    events.push(event);
  }
  return { events, problems };
}

// ---- comparing what a client received ---------------------------------------------------------

// compareStream(received[], expected[]) -> problems[]: byte-exact comparison of raw event texts
// (with time_us holed), plus strictly increasing time_us.
export function compareStream(received, expectedTemplates, { label = 'stream' } = {}) {
  const problems = [];
  let last = -Infinity;
  received.forEach((json, i) => {
    const { timeUs } = splitTimeUs(json);
    if (!(timeUs > last)) problems.push(`${label} #${i}: time_us ${timeUs} not above the previous ${last}`);
    last = timeUs;
  });
  const n = Math.max(received.length, expectedTemplates.length);
  for (let i = 0; i < n && problems.length < 10; i++) {
    const got = received[i] === undefined ? undefined : splitTimeUs(received[i]).template;
    if (got !== expectedTemplates[i]) {
      problems.push(
        `${label} #${i}:\n    expected ${expectedTemplates[i] ?? '(no more events)'}\n    received ${got ?? '(nothing)'}`,
      );
    }
  }
  if (received.length !== expectedTemplates.length) {
    problems.push(`${label}: received ${received.length} events, expected ${expectedTemplates.length}`);
  }
  return problems;
}

// The v1 filter semantics (API.md): the DID filter applies to every kind, collection filters to
// commits only; `x.*` patterns match by prefix.
export function matchesFilter(event, { wantedCollections = [], wantedDids = [] } = {}) {
  if (wantedDids.length > 0 && !wantedDids.includes(event.did)) return false;
  if (event.kind !== 'commit' || wantedCollections.length === 0) return true;
  return wantedCollections.some((c) =>
    c.endsWith('.*') ? event.collection.startsWith(c.slice(0, -1)) : event.collection === c,
  );
}
