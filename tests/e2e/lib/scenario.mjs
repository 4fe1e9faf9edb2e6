// The scenario: real actions through the PDS's XRPC API, each recorded with the v1 events it must
// produce downstream, in the order the PDS sequences them.
//
// Expectations (`Recorder#expected`) are entries of one of these shapes:
//   {kind:'commit', did, operation, collection, rkey, rev, cid?, record?, step}
//   {kind:'identity', did, handle, step}            (upstream seq and time filled in from the tap)
//   {kind:'account', did, active, status?, step}    (idem)
// `cid` and `rev` come from the PDS's XRPC answers, `record` is exactly the JSON that was written.
// Frames that yield no v1 event (#sync, and the empty #commit of createAccount) are not expected.
//
import { adminAuth, bearer, xrpc } from './pds.mjs';

// A real 1x1 PNG (the PDS sniffs the type of uploaded blobs).
const PNG_1X1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

// Text that exercises v1's Go-style escaping: non-ASCII (2-, 3- and 4-byte UTF-8), `&<>`, quotes,
// backslash, control characters, U+2028/U+2029 and a slash (not escaped).
export const TRICKY_TEXT =
  'Grüße aus Köln — 東京 🦋 <b>bold</b> & "quotes" \\ back/slash\ttab\nnewline\u2028ls\u2029ps \u0001';

let clock = Date.parse('2024-05-01T12:00:00.000Z');
const createdAt = () => {
  clock += 1000;
  return new Date(clock).toISOString();
};

const rkeyOf = (uri) => uri.split('/').pop();

export class Recorder {
  constructor(pdsUrl) {
    this.pds = pdsUrl;
    this.expected = [];
    this.accounts = {};
    this.step = '';
    this.log = [];
  }

  begin(step) {
    this.step = step;
    this.log.push({ step, at: Date.now() });
  }

  expect(entry) {
    this.expected.push({ ...entry, step: this.step });
  }

  async createAccount(name) {
    const handle = `${name}.test`;
    const out = await xrpc(this.pds, 'com.atproto.server.createAccount', {
      body: { handle, email: `${name}@example.test`, password: `${name}-password` },
    });
    const account = { name, did: out.did, handle: out.handle, accessJwt: out.accessJwt };
    this.accounts[name] = account;
    this.expect({ kind: 'identity', did: account.did, handle });
    this.expect({ kind: 'account', did: account.did, active: true });
    return account;
  }

  async createRecord(account, collection, record) {
    const out = await xrpc(this.pds, 'com.atproto.repo.createRecord', {
      auth: bearer(account),
      body: { repo: account.did, collection, record },
    });
    const ref = { uri: out.uri, cid: out.cid, rkey: rkeyOf(out.uri), collection, did: account.did };
    this.expect({
      kind: 'commit', did: account.did, operation: 'create', collection, rkey: ref.rkey,
      rev: out.commit.rev, cid: out.cid, record,
    });
    return ref;
  }

  async putRecord(account, collection, rkey, record, operation) {
    const out = await xrpc(this.pds, 'com.atproto.repo.putRecord', {
      auth: bearer(account),
      body: { repo: account.did, collection, rkey, record },
    });
    this.expect({
      kind: 'commit', did: account.did, operation, collection, rkey, rev: out.commit.rev,
      cid: out.cid, record,
    });
    return { uri: out.uri, cid: out.cid, rkey, collection, did: account.did };
  }

  async deleteRecord(account, ref) {
    const out = await xrpc(this.pds, 'com.atproto.repo.deleteRecord', {
      auth: bearer(account),
      body: { repo: account.did, collection: ref.collection, rkey: ref.rkey },
    });
    this.expect({
      kind: 'commit', did: account.did, operation: 'delete', collection: ref.collection,
      rkey: ref.rkey, rev: out.commit.rev,
    });
  }

  // applyWrites(account, [{op:'create'|'update'|'delete', collection, rkey?, record?}])
  async applyWrites(account, writes) {
    const body = {
      repo: account.did,
      writes: writes.map((w) => {
        const t = `com.atproto.repo.applyWrites#${w.op}`;
        if (w.op === 'create') {
          return w.rkey
            ? { $type: t, collection: w.collection, rkey: w.rkey, value: w.record }
            : { $type: t, collection: w.collection, value: w.record };
        }
        if (w.op === 'update') return { $type: t, collection: w.collection, rkey: w.rkey, value: w.record };
        return { $type: t, collection: w.collection, rkey: w.rkey };
      }),
    };
    const out = await xrpc(this.pds, 'com.atproto.repo.applyWrites', { auth: bearer(account), body });
    const refs = [];
    writes.forEach((w, i) => {
      const result = out.results[i];
      const rkey = w.op === 'create' && !w.rkey ? rkeyOf(result.uri) : w.rkey;
      const entry = {
        kind: 'commit', did: account.did, operation: w.op, collection: w.collection, rkey,
        rev: out.commit.rev,
      };
      if (w.op !== 'delete') {
        entry.cid = result.cid;
        entry.record = w.record;
      }
      this.expect(entry);
      refs.push({ uri: result.uri, cid: result.cid, rkey, collection: w.collection, did: account.did });
    });
    return refs;
  }

  async uploadBlob(account, bytes, contentType) {
    const out = await xrpc(this.pds, 'com.atproto.repo.uploadBlob', {
      auth: bearer(account),
      bytes,
      contentType,
    });
    return out.blob; // {$type:'blob', ref:{$link}, mimeType, size}: nothing on the firehose yet
  }

  async updateHandle(account, handle) {
    await xrpc(this.pds, 'com.atproto.identity.updateHandle', {
      auth: bearer(account),
      body: { handle },
    });
    account.handle = handle;
    this.expect({ kind: 'identity', did: account.did, handle });
  }

  async deactivate(account) {
    await xrpc(this.pds, 'com.atproto.server.deactivateAccount', { auth: bearer(account), body: {} });
    this.expect({ kind: 'account', did: account.did, active: false, status: 'deactivated' });
  }

  async activate(account) {
    // must be a POST without a body (a body gets 400 "A request body was provided when none was expected")
    await xrpc(this.pds, 'com.atproto.server.activateAccount', { auth: bearer(account), noBody: true });
    this.expect({ kind: 'account', did: account.did, active: true });
    this.expect({ kind: 'identity', did: account.did, handle: account.handle });
  }

  async takedown(account, applied) {
    await xrpc(this.pds, 'com.atproto.admin.updateSubjectStatus', {
      auth: adminAuth(),
      body: {
        subject: { $type: 'com.atproto.admin.defs#repoRef', did: account.did },
        takedown: applied ? { applied: true, ref: 'e2e-takedown-1' } : { applied: false },
      },
    });
    if (applied) this.expect({ kind: 'account', did: account.did, active: false, status: 'takendown' });
    else this.expect({ kind: 'account', did: account.did, active: true });
  }
}

const post = (text, extra = {}) => ({ $type: 'app.bsky.feed.post', text, createdAt: createdAt(), ...extra });
const strongRef = (ref) => ({ uri: ref.uri, cid: ref.cid });

// The phases, in order. Each takes the Recorder and the state object shared between phases. The
// harness starts the filtered library clients after `accounts` (their filters need the DIDs),
// kills decode after `content` and starts it again after `whileDecodeIsDown`.
export const phases = {
  async accounts(rec, st) {
    rec.begin('create accounts');
    st.alice = await rec.createAccount('alice');
    st.bob = await rec.createAccount('bob');
    st.carol = await rec.createAccount('carol');
  },

  // posts of every kind, likes, follows, a repost, the profile twice
  async content(rec, st) {
    rec.begin('posts');
    st.p1 = await rec.createRecord(st.alice, 'app.bsky.feed.post', post('hello from alice, the first post'));
    st.p2 = await rec.createRecord(st.alice, 'app.bsky.feed.post', post('ein Beitrag mit Sprache', { langs: ['de', 'en'] }));
    st.reply = await rec.createRecord(st.bob, 'app.bsky.feed.post', post('a reply from bob', {
      reply: { root: strongRef(st.p1), parent: strongRef(st.p1) },
    }));
    const blob = await rec.uploadBlob(st.alice, PNG_1X1, 'image/png');
    st.imagePost = await rec.createRecord(st.alice, 'app.bsky.feed.post', post('a picture', {
      embed: {
        $type: 'app.bsky.embed.images',
        images: [{ alt: 'one red pixel', image: blob, aspectRatio: { width: 1, height: 1 } }],
      },
    }));
    st.tricky = await rec.createRecord(st.carol, 'app.bsky.feed.post', post(TRICKY_TEXT, { langs: ['de', 'ja'] }));

    rec.begin('likes, follows, repost');
    st.like1 = await rec.createRecord(st.bob, 'app.bsky.feed.like', {
      $type: 'app.bsky.feed.like', subject: strongRef(st.p1), createdAt: createdAt(),
    });
    st.like2 = await rec.createRecord(st.carol, 'app.bsky.feed.like', {
      $type: 'app.bsky.feed.like', subject: strongRef(st.imagePost), createdAt: createdAt(),
    });
    st.follow1 = await rec.createRecord(st.alice, 'app.bsky.graph.follow', {
      $type: 'app.bsky.graph.follow', subject: st.bob.did, createdAt: createdAt(),
    });
    st.follow2 = await rec.createRecord(st.bob, 'app.bsky.graph.follow', {
      $type: 'app.bsky.graph.follow', subject: st.alice.did, createdAt: createdAt(),
    });
    st.follow3 = await rec.createRecord(st.carol, 'app.bsky.graph.follow', {
      $type: 'app.bsky.graph.follow', subject: st.alice.did, createdAt: createdAt(),
    });
    st.repost = await rec.createRecord(st.carol, 'app.bsky.feed.repost', {
      $type: 'app.bsky.feed.repost', subject: strongRef(st.reply), createdAt: createdAt(),
    });

    rec.begin('profile create then update');
    await rec.putRecord(st.alice, 'app.bsky.actor.profile', 'self', {
      $type: 'app.bsky.actor.profile', displayName: 'Alice', description: 'first profile',
    }, 'create');
    await rec.putRecord(st.alice, 'app.bsky.actor.profile', 'self', {
      $type: 'app.bsky.actor.profile', displayName: 'Alice A.', description: 'updated <profile> & more',
    }, 'update');
  },

  // deletes and one multi-op applyWrites (the harness runs this while decode is down)
  async whileDecodeIsDown(rec, st) {
    rec.begin('deletes');
    await rec.deleteRecord(st.alice, st.p2);
    await rec.deleteRecord(st.bob, st.follow2);

    rec.begin('applyWrites');
    await rec.applyWrites(st.bob, [
      { op: 'create', collection: 'app.bsky.feed.post', record: post('batch post one') },
      { op: 'create', collection: 'app.bsky.feed.like', record: { $type: 'app.bsky.feed.like', subject: strongRef(st.tricky), createdAt: createdAt() } },
      { op: 'create', collection: 'app.bsky.graph.follow', record: { $type: 'app.bsky.graph.follow', subject: st.carol.did, createdAt: createdAt() } },
      { op: 'create', collection: 'app.bsky.actor.profile', rkey: 'self', record: { $type: 'app.bsky.actor.profile', displayName: 'Bob' } },
      { op: 'delete', collection: 'app.bsky.feed.post', rkey: st.reply.rkey },
    ]);
  },

  // identity and account changes, moderation, a last post (decode restarted)
  async identityAndModeration(rec, st) {
    rec.begin('handle change');
    await rec.updateHandle(st.bob, 'bobby.test');

    rec.begin('deactivate / activate');
    await rec.deactivate(st.carol);
    await rec.activate(st.carol);

    rec.begin('takedown / reversal');
    await rec.takedown(st.alice, true);
    await rec.takedown(st.alice, false);

    rec.begin('final post');
    st.last = await rec.createRecord(st.bob, 'app.bsky.feed.post', post('the last word, from bobby'));
  },
};
