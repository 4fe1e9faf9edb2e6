// The benchmark's yardstick stays honest: tools/peer-decode (both ways) must find exactly the
// events production v1 served for the real relay frames of ../shared/corpus (time_us aside,
// compared as JSON values: the peer does not copy v1's key order or escaping), and the same
// number jetstream-frames finds. A peer that skipped work would look fast and fail here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { framesTool, sharedDir } from './lib/pipeline.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PEER = path.join(HERE, '..', '..', 'tools', 'peer-decode', 'peer-decode.mjs');
const FRAMES = path.join(sharedDir(), 'corpus', 'dev.frames');
const EXPECTED = path.join(sharedDir(), 'corpus', 'dev.expected.jsonl');

function skipReason() {
  if (!fs.existsSync(path.join(HERE, 'node_modules', '@atproto', 'repo', 'package.json'))) {
    return `npm packages not installed in ${path.join(HERE, 'node_modules')}: run bash tests/e2e/install.sh`;
  }
  if (!fs.existsSync(framesTool())) return `not built: ${framesTool()}`;
  return false;  // ../shared missing is a failure, not a skip
}
const SKIP = skipReason();
if (SKIP) console.log(`# e2e skipped: ${SKIP}`);

const withoutTime = (line) => {
  const event = JSON.parse(line);
  delete event.time_us;
  return event;
};
const lines = (text) => text.split('\n').filter(Boolean);

describe('tools/peer-decode, the JavaScript yardstick of bench-decode', { skip: SKIP }, () => {
  const expected = lines(fs.readFileSync(EXPECTED, 'utf8')).map(withoutTime);

  for (const mode of ['--lean', '--atproto']) {
    test(`${mode} finds v1's events for the real relay frames`, () => {
      const out = execFileSync(process.execPath, [PEER, mode, FRAMES], { timeout: 60_000 });
      assert.deepEqual(lines(out.toString('utf8')).map(withoutTime), expected);
    });
  }

  test('jetstream-frames decode finds the same events (its bytes are checked by the golden tests)', () => {
    const out = execFileSync(framesTool(), ['decode', FRAMES], { timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    assert.deepEqual(lines(out.toString('utf8')).map(withoutTime), expected);
  });
});
