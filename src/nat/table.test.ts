/** KeyIndex / SaTable: correctness under inserts and deletes, and memory at 1M SAs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyIndex } from './keyindex';
import { SaTable, SaKind } from './table';
import { checksumAdjust32 as csumUpdate32 } from '../packet/checksum';

test('KeyIndex matches a Map through random inserts and backward-shift deletes', () => {
  const ix = new KeyIndex(16);
  const ref = new Map<string, number>();
  let seed = 12345;
  const rnd = (): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed; };
  for (let i = 0; i < 60000; i++) {
    const a = rnd() % 64, b = rnd() % 64; // small key space: many collisions and long runs
    const key = `${a},${b}`;
    if (rnd() % 3 === 0) {
      assert.equal(ix.delete(a, b, 7, 0xffffffff), ref.delete(key));
    } else {
      ix.set(a, b, 7, 0xffffffff, i);
      ref.set(key, i);
    }
  }
  assert.equal(ix.size, ref.size);
  for (let a = 0; a < 64; a++) for (let b = 0; b < 64; b++) {
    assert.equal(ix.get(a, b, 7, 0xffffffff), ref.get(`${a},${b}`) ?? -1);
  }
});

test('incremental checksum equals a full recomputation (RFC 1624 eqn. 3)', () => {
  // 0xdd2f is the checksum of 45 00 00 73 00 00 40 00 40 11 .. .. c0 a8 00 01 c0 a8 00 c7 (RFC 1071-style example).
  const hdr = [0x4500, 0x0073, 0x0000, 0x4000, 0x4011, 0x0000, 0xc0a8, 0x0001, 0xc0a8, 0x00c7];
  const full = (h: number[]): number => { let s = 0; for (const w of h) s += w; while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); return ~s & 0xffff; };
  const c0 = full(hdr);
  assert.equal(c0, 0xb861);
  const c1 = csumUpdate32(c0, 0xc0a80001, 0xcb007101);
  const h2 = hdr.slice(); h2[6] = 0xcb00; h2[7] = 0x7101;
  assert.equal(c1, full(h2));
});

test('1M SAs fit in well under 300 MB; lookups allocate nothing', () => {
  const before = process.memoryUsage();
  const t = new SaTable(1 << 20);
  const N = 1_000_000;
  for (let i = 0; i < N; i++) {
    const id = t.add(SaKind.ESP_IN, 0, 0xc6336400 + (i & 255), 0x0a000000 + (i >>> 4), (Math.imul(i, 2654435761) + 1) >>> 0, 0, 0, 0, 0);
    assert.ok(id >= 0);
  }
  if (global.gc) global.gc();
  const after = process.memoryUsage();
  const grew = (after.arrayBuffers - before.arrayBuffers) + (after.heapUsed - before.heapUsed);
  const mb = grew / 1048576;
  console.log(`# 1M SAs: ${mb.toFixed(1)} MB (${(grew / N).toFixed(1)} bytes/SA), table arrays ${(t.byteLength / 1048576).toFixed(1)} MB`);
  assert.ok(mb < 200, `1M SAs took ${mb.toFixed(1)} MB`);
  // Every record found again.
  for (let i = 0; i < N; i += 97) {
    assert.equal(t.find(SaKind.ESP_IN, 0, 0xc6336400 + (i & 255), (Math.imul(i, 2654435761) + 1) >>> 0, 0), i);
  }
  // Unknown lookups: no heap growth.
  const h0 = process.memoryUsage().heapUsed;
  let hits = 0;
  for (let i = 0; i < 1_000_000; i++) if (t.find(SaKind.ESP_IN, 0, 0xc6336400, i * 2, 0) >= 0) hits++;
  const h1 = process.memoryUsage().heapUsed;
  assert.ok(h1 - h0 < 4 * 1048576, `heap grew ${(h1 - h0)} bytes over 1M lookups`);
  assert.ok(hits < 100);
});
