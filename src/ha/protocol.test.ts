/** Replication framing and authentication: byte-level, no sockets. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DIR_ACTIVE, DIR_STANDBY, FrameReader, FrameWriter, MAX_FRAME, ProtocolError, T, deriveKeys, encode, nonce, parseKey } from './protocol';

const KEY = randomBytes(32);

function reasonOf(fn: () => unknown): string {
  try { fn(); } catch (e) { if (e instanceof ProtocolError) return e.reason; throw e; }
  return 'accepted';
}

test('frames round-trip whatever the socket chunking (one byte at a time too)', () => {
  const w = new FrameWriter(KEY, DIR_ACTIVE);
  const frames = [w.frame(T.HELLO, nonce()), w.frame(T.SNAP_BEGIN), w.frame(T.RECORDS, Buffer.from('P 1 2 3 4 5 0 0 0 0 1\n')), w.frame(T.SNAP_END, Buffer.alloc(8))];
  const all = Buffer.concat(frames);
  for (const step of [1, 3, 17, all.length]) {
    const r = new FrameReader(KEY, DIR_ACTIVE);
    const got: { type: T; seq: number; payload: Buffer }[] = [];
    for (let i = 0; i < all.length; i += step) {
      r.push(all.subarray(i, i + step));
      for (let f = r.next(); f; f = r.next()) got.push(f);
    }
    assert.deepEqual(got.map((f) => [f.type, f.seq]), [[T.HELLO, 0], [T.SNAP_BEGIN, 1], [T.RECORDS, 2], [T.SNAP_END, 3]], `chunks of ${step}`);
    assert.equal(got[2]!.payload.toString(), 'P 1 2 3 4 5 0 0 0 0 1\n');
    assert.equal(r.buffered, 0);
  }
});

test('a frame with one bit changed anywhere, or under another key, fails its mac', () => {
  const f = encode(KEY, DIR_ACTIVE, T.RECORDS, 0, Buffer.from('D 1 2 3 4 5\n'));
  for (let i = 4; i < f.length; i++) {
    const g = Buffer.from(f);
    g[i]! ^= 1;
    const r = new FrameReader(KEY, DIR_ACTIVE);
    r.push(g);
    assert.equal(reasonOf(() => r.next()), 'bad_mac', `bit flipped in byte ${i}`);
  }
  const r = new FrameReader(randomBytes(32), DIR_ACTIVE);
  r.push(f);
  assert.equal(reasonOf(() => r.next()), 'bad_mac', 'wrong key');
  // A standby's own message reflected back at it: the direction is part of the mac.
  const back = new FrameReader(KEY, DIR_STANDBY);
  back.push(f);
  assert.equal(reasonOf(() => back.next()), 'bad_mac', 'reflected');
});

test('sequence numbers: a repeated frame is a replay, a skipped one is out of order', () => {
  const w = new FrameWriter(KEY, DIR_ACTIVE);
  const a = w.frame(T.SNAP_BEGIN), b = w.frame(T.RECORDS, Buffer.from('x\n')), c = w.frame(T.RECORDS, Buffer.from('y\n'));
  const r = new FrameReader(KEY, DIR_ACTIVE);
  r.push(Buffer.concat([a, b]));
  r.next(); r.next();
  r.push(b);
  assert.equal(reasonOf(() => r.next()), 'replay');
  const r2 = new FrameReader(KEY, DIR_ACTIVE);
  r2.push(Buffer.concat([a, c]));
  r2.next();
  assert.equal(reasonOf(() => r2.next()), 'out_of_order');
});

test('session keys: a frame from one session fails in another (fresh nonces each side)', () => {
  const nA = nonce(), s1 = deriveKeys(KEY, nA, nonce()), s2 = deriveKeys(KEY, nA, nonce());
  assert.notDeepEqual(s1.toStandby, s2.toStandby);
  assert.notDeepEqual(s1.toStandby, s1.toActive);
  const f = encode(s1.toStandby, DIR_ACTIVE, T.SNAP_BEGIN, 1);
  const r = new FrameReader(s2.toStandby, DIR_ACTIVE);
  r.expect = 1;
  r.push(f);
  assert.equal(reasonOf(() => r.next()), 'bad_mac');
});

test('lengths: above MAX_FRAME is refused before buffering it, below a header is malformed', () => {
  const r = new FrameReader(KEY, DIR_ACTIVE);
  const h = Buffer.alloc(4); h.writeUInt32BE(MAX_FRAME);
  r.push(h);
  assert.equal(reasonOf(() => r.next()), 'too_long');
  const r2 = new FrameReader(KEY, DIR_ACTIVE);
  const s = Buffer.alloc(40); s.writeUInt32BE(20);
  r2.push(s);
  assert.equal(reasonOf(() => r2.next()), 'malformed');
  assert.throws(() => encode(KEY, DIR_ACTIVE, T.RECORDS, 0, Buffer.alloc(MAX_FRAME)), RangeError);
});

test('key files: at least 32 bytes, one trailing newline ignored', () => {
  assert.throws(() => parseKey(Buffer.from('short\n'), '/k'), /5 bytes; at least 32/);
  assert.equal(parseKey(Buffer.from(`${'a'.repeat(32)}\n`), '/k').length, 32);
});
