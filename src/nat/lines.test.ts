/**
 * The journal's byte formatter (lines.ts, ascii.ts) against the reference string formatter
 * (Journal.putLine and the delete template it replaced): the same bytes for random and edge values,
 * straight from an SA table too; batched appends land in the file in order and replay the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ascii } from './ascii';
import { delLineTo, putLineTo, recordLineTo, MAX_LINE_BYTES } from './lines';
import { Journal, type JournalEntry } from './journal';
import { SaTable } from './table';

/** Deterministic pseudo-random numbers (xorshift32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

const EDGE32 = [0, 1, 9, 10, 99, 100, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, -1, -0x80000000, 2 ** 32, 2 ** 32 + 5, 1e10, 2 ** 53];
const EDGE_TIME = [0, -0, -5, 0.5, 1.5, 2.5, -0.5, 1_700_000_000_000.4, 1_700_000_000_000.5, 9_999_999_999_999, Number.MAX_SAFE_INTEGER,
  2 ** 53 + 2, 1e20, 1e21, 1.5e300, Number.MAX_VALUE, NaN, Infinity, -Infinity];
const EDGE_KIND = [0, 1, 2, 3, 9, 255, 257, -1, 1.5, 1e21, NaN];

function pick(r: () => number, edges: number[], random: () => number): number {
  return r() % 3 === 0 ? edges[r() % edges.length]! : random();
}

const delRef = (kind: number, pub: number, server: number, a: number, b: number): string =>
  `D ${kind} ${pub >>> 0} ${server >>> 0} ${a >>> 0} ${b >>> 0}\n`;

test('put and delete lines: the same bytes as the string formatter, for 20,000 random entries with edge values', () => {
  const r = rng(12);
  const o = new Ascii(MAX_LINE_BYTES);
  for (let i = 0; i < 20_000; i++) {
    const u = (): number => pick(r, EDGE32, r);
    const e: JournalEntry = {
      kind: pick(r, EDGE_KIND, () => r() & 3), pub: u(), server: u(), host: u(), a: u(), b: u(), rh: u(), rl: u(),
      flags: pick(r, [0, 255, 256, 0xfff, -1], () => r() & 0xff),
      created: pick(r, EDGE_TIME, () => 1_600_000_000_000 + (r() % 1e9) + (r() % 7) / 4),
    };
    o.reset();
    putLineTo(o, e.kind, e.pub, e.server, e.host, e.a, e.b, e.rh, e.rl, e.flags, e.created);
    assert.ok(o.n <= MAX_LINE_BYTES, `line of ${o.n} bytes`);
    assert.equal(o.view().toString('latin1'), Journal.putLine(e), JSON.stringify(e));
    o.reset();
    delLineTo(o, e.kind, e.pub, e.server, e.a, e.b);
    assert.equal(o.view().toString('latin1'), delRef(e.kind, e.pub, e.server, e.a, e.b));
  }
});

test('Ascii.num and Ascii.json write what String() and JSON.stringify() write', () => {
  const r = rng(7);
  const o = new Ascii(64);
  const values = [...EDGE32, ...EDGE_TIME, 123.456, -7, 1e-7, 5e-324];
  for (let i = 0; i < 5000; i++) values.push(r() * 2 ** (r() % 60) / 2 ** (r() % 8));
  for (const v of values) {
    o.reset(); o.num(v);
    assert.equal(o.view().toString('latin1'), String(v));
    o.reset(); o.json(v);
    assert.equal(o.view().toString('latin1'), JSON.stringify(v));
  }
  for (const v of [0, 1, 0xdeadbeef, 0xffffffff, 0x0000abcd]) {
    o.reset(); o.hex8(v);
    assert.equal(o.view().toString('latin1'), v.toString(16).padStart(8, '0'));
    o.reset(); o.ipv4(v);
    assert.equal(o.view().toString('latin1'), `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`);
  }
});

test('a record line from the SA table equals putLine() of the entry the table gave before', () => {
  const r = rng(99);
  const sas = new SaTable(1 << 12);
  const publics = Uint32Array.from([0xcb007101, 0xffffffff, 0]);
  for (let i = 0; i < 3000; i++) {
    const id = sas.add(1 + (r() % 3), r() % 3, r(), r(), r(), r() % 5 === 0 ? 0 : r(), 0, pick(r, EDGE_TIME, () => 1_700_000_000_000 + r()), r() & 0xff);
    sas.rh[id] = pick(r, EDGE32, r);
    sas.rl[id] = r();
  }
  const o = new Ascii(MAX_LINE_BYTES);
  for (let id = 0; id < sas.top; id++) {
    const e: JournalEntry = { kind: sas.kind[id], pub: publics[sas.pub[id]], server: sas.server[id], host: sas.host[id], a: sas.a[id], b: sas.b[id],
      rh: sas.rh[id], rl: sas.rl[id], flags: sas.flags[id], created: sas.created[id] };
    o.reset();
    recordLineTo(o, sas, publics, id);
    assert.equal(o.view().toString('latin1'), Journal.putLine(e));
  }
});

test('batched appends: written at the end of the batch (or per 64 KiB), in order; the replay is the same as line by line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-lines-'));
  try {
    const path = join(dir, 'nat.journal');
    const j = new Journal(path, { slack: 1 << 20, sync: 'none' });
    j.load();
    j.openAppend();
    const e = (spi: number): JournalEntry => ({ kind: 1, pub: 0xcb007101, server: 0xc6336410, host: 0x0a000001 + (spi & 15), a: spi, b: 0, rh: 0, rl: 0, flags: 2, created: 1_700_000_000_000 });
    let want = '';
    for (let spi = 1; spi <= 5000; spi++) { j.put(e(spi)); want += Journal.putLine(e(spi)); }
    assert.equal(readFileSync(path, 'latin1'), want, 'a put outside a batch is in the file at once');
    j.beginBatch();
    for (let spi = 1; spi <= 4000; spi++) { j.del(1, 0xcb007101, 0xc6336410, spi, 0); want += delRef(1, 0xcb007101, 0xc6336410, spi, 0); }
    j.put(e(7)); want += Journal.putLine(e(7)); // deleted, then made again: order matters
    assert.ok(readFileSync(path, 'latin1').length < want.length, 'a batch is written at its end (or when the buffer fills)');
    j.endBatch();
    assert.equal(readFileSync(path, 'latin1'), want);
    j.close();
    const back = new Journal(path, 1);
    const live = back.load();
    assert.equal(back.badLines, 0);
    assert.deepEqual(live.map((x) => x.a).sort((x, y) => x - y), [7, ...Array.from({ length: 1000 }, (_, i) => 4001 + i)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
