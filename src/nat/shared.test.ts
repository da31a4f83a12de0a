/**
 * The shared SA table under a concurrent writer (docs/nat.md "Workers and the memory model"): this
 * thread adds and removes records of a 1M-SA table as fast as it can (ids are reused at once through
 * the free list), while a worker thread looks keys up through SharedSaView and checks every record it
 * is given against the value the key determines. A torn read (a record's fields from two lifetimes,
 * or a record that no longer has the key) would show as a wrong host or responder SPI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { EPOCH, SaKind, SaTable } from './table';
import { SharedSaView } from './shared';

const SERVER = 0xc6336400; // 198.51.100.0
const GENS = 4;
/** Slots the writer rewrites most of the time (and the reader reads most of the time). */
const HOT = 64;
/** What the record for slot k in generation g must hold (the reader, in its own source below, checks exactly this). */
const expectHost = (k: number, g: number): number => (Math.imul(k ^ (g << 24), 0x9e3779b1) | 1) >>> 0;

test('a reader in another thread never sees a torn record of a 1M-SA shared table under a writer that churns it', async (t) => {
  const MAX = 1 << 20;
  const table = new SaTable(MAX, 1024, { shared: true });
  const K = 900_000;
  const gen = new Int32Array(K).fill(-1);
  const ids = new Int32Array(K).fill(-1);
  const add = (k: number, g: number): void => {
    // host and flags: two fields add() writes under the record's seqlock, both determined by the key.
    const id = table.add(SaKind.ESP_IN, 0, (SERVER + (k & 255)) >>> 0, expectHost(k, g), k, g, 0, 0, expectHost(k, g) >>> 24);
    assert.ok(id >= 0);
    ids[k] = id; gen[k] = g;
  };
  for (let k = 0; k < K; k++) add(k, 0);
  /**
   * One round: a reader thread looks keys up while this thread churns for `ms`. naive: the reader
   * takes the index's id and reads the record's fields with no seqlock and no key check (the control:
   * it must see torn records, or this test could not catch them).
   */
  const round = async (naive: boolean, ms: number) => {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const { SharedSaView } = require(workerData.shared);
      const { KeyIndex } = require(workerData.keyindex);
      const view = new SharedSaView(workerData.sas);
      const index = new KeyIndex(0, workerData.sas.index);
      const m = workerData.sas;
      const expectHost = (k, g) => (Math.imul(k ^ (g << 24), 0x9e3779b1) | 1) >>> 0;
      let x = 12345, reads = 0, hits = 0, torn = 0, example = null;
      parentPort.postMessage('ready');
      while (Atomics.load(workerData.stop, 0) === 0) {
        for (let n = 0; n < 4096; n++) {
          // As a worker runs: most lookups inside a batch's window (epoch read at its start), some outside.
          if ((n & 63) === 0) { view.batchEnd(); if ((n & 192) !== 0) view.batchStart(); }
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          // Mostly the few slots the writer rewrites over and over: lookups that race a rewrite.
          const k = (x & 7) !== 0 ? (x >>> 8) % ${HOT} : x % ${K}, g = (x >>> 20) % ${GENS};
          const server = (${SERVER} + (k & 255)) >>> 0;
          let id, host, flags;
          if (workerData.naive) {
            id = index.getShared(server, k, g, 1);
            if (id >= 0) { host = m.host[id]; flags = m.flags[id]; }
          } else {
            id = view.lookup(1, 0, server, k, g);
            host = view.host; flags = view.flags;
          }
          reads++;
          if (id < 0) continue;
          hits++;
          const h = expectHost(k, g);
          if (host !== h || flags !== (h >>> 24)) { torn++; example ??= { k, g, id, host, want: h }; }
        }
      }
      parentPort.postMessage({ reads, hits, torn, raced: view.raced, slow: view.slow, example });
    `, { eval: true, workerData: { shared: join(__dirname, 'shared.js'), keyindex: join(__dirname, 'keyindex.js'), sas: table.sharedArrays(), stop, naive } });
    assert.equal(await new Promise((r) => worker.once('message', r)), 'ready');
    const result = new Promise<{ reads: number; hits: number; torn: number; raced: number; slow: number; example: unknown }>((r) => worker.once('message', r));
    // Churn: remove a record and add its slot's next generation (usually into the id just freed).
    let x = 99, churn = 0;
    const until = Date.now() + ms;
    while (Date.now() < until) {
      for (let n = 0; n < 1024; n++) {
        x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
        // 3 of 4 rewrites hit the hot slots the reader watches; the rest move through the whole table.
        const k = (x & 3) !== 0 ? (x >>> 8) % HOT : x % K;
        table.remove(ids[k]);
        add(k, (gen[k] + 1) % GENS);
        churn++;
      }
    }
    Atomics.store(stop, 0, 1);
    const r = await result;
    await worker.terminate();
    return { ...r, churn };
  };
  // Torn reads are rare events: the control gets up to 5 rounds to show one.
  let control = await round(true, 400);
  for (let i = 0; i < 4 && control.torn === 0; i++) control = await round(true, 400);
  t.diagnostic(`control (no seqlock, no key check): ${control.churn} remove+add; ${control.reads} lookups, ${control.hits} hits, ${control.torn} torn`);
  assert.ok(control.torn > 0, 'the control reader sees torn records (else this test could not see them either)');
  const r = await round(false, 1500);
  const churn = r.churn;
  // This thread's own view agrees with the table after the churn.
  const own = new SharedSaView(table.sharedArrays());
  for (let k = 0; k < 1000; k++) assert.equal(own.lookup(SaKind.ESP_IN, 0, (SERVER + (k & 255)) >>> 0, k, gen[k]), ids[k]);
  t.diagnostic(`writer: ${churn} remove+add; reader: ${r.reads} lookups (${r.slow} met the epoch moving and took the per-record path), ${r.hits} hits, ${r.raced} misses on a record changing under it, ${r.torn} torn; table ${(table.byteLength / 1048576).toFixed(1)} MiB`);
  assert.equal(r.torn, 0, `torn reads: ${JSON.stringify(r.example)}`);
  assert.ok(r.reads > 100_000 && r.hits > r.reads / (GENS * 4), `reader made progress: ${JSON.stringify(r)}`);
  assert.ok(churn > 100_000, `writer churned ${churn} records`);
  assert.ok(table.byteLength < 128 * 1024 * 1024, `1M-SA table: ${table.byteLength} bytes`);
});

test('SharedSaView misses a record being rewritten; a reused id answers only for its new key', () => {
  const table = new SaTable(64, 16, { shared: true });
  const view = new SharedSaView(table.sharedArrays());
  const id = table.add(SaKind.ESP_IN, 0, SERVER, 0xc0a80102, 0x1234, 0, 0, 0, 0);
  assert.equal(view.lookup(SaKind.ESP_IN, 0, SERVER, 0x1234, 0), id);
  assert.equal(view.host, 0xc0a80102);
  assert.equal(view.slow, 0, 'a table at rest: the fast path (epoch even, unchanged)');
  // As if add() were half-way through rewriting it: the epoch odd, and the record's seq.
  Atomics.add(table.epoch, EPOCH, 1);
  Atomics.add(table.seq, id, 1);
  assert.equal(view.lookup(SaKind.ESP_IN, 0, SERVER, 0x1234, 0), -1);
  Atomics.add(table.seq, id, 1);
  // The owner still inside an add or remove of another record: this one answers on the per-record path.
  assert.equal(view.lookup(SaKind.ESP_IN, 0, SERVER, 0x1234, 0), id);
  assert.equal(view.slow, 2);
  Atomics.add(table.epoch, EPOCH, 1);
  assert.equal(table.epoch[EPOCH], 4, 'add() moved the epoch by 2, and the two steps above');
  // Removed and its id reused for another key: the old key finds nothing, the new one its record.
  table.remove(id);
  const id2 = table.add(SaKind.ESP_IN, 0, SERVER, 0xc0a80109, 0x9999, 0, 0, 0, 0);
  assert.equal(id2, id);
  assert.equal(view.lookup(SaKind.ESP_IN, 0, SERVER, 0x1234, 0), -1);
  assert.equal(view.lookup(SaKind.ESP_IN, 0, SERVER, 0x9999, 0), id);
  assert.equal(view.host, 0xc0a80109);
  assert.equal(view.raced, 1);
  assert.equal(table.epoch[EPOCH], 8, 'remove() and add() moved it by 2 each');
  assert.equal(view.slow, 2, 'none of these met a write');
  assert.throws(() => new SaTable(64).sharedArrays(), /not created shared/);
});

test('the shared index doubles in place under a reader: no torn read; every key found once the adds are done', async (t) => {
  const table = new SaTable(1 << 20, 1024, { shared: true });
  const K = 400_000;
  const added = new Int32Array(new SharedArrayBuffer(4));
  const slotsAtStart = table.index.capacity;
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { SharedSaView } = require(workerData.shared);
    const view = new SharedSaView(workerData.sas);
    const expectHost = (k, g) => (Math.imul(k ^ (g << 24), 0x9e3779b1) | 1) >>> 0;
    let x = 777, reads = 0, hits = 0, torn = 0, missed = 0, example = null;
    parentPort.postMessage('ready');
    for (;;) {
      const n = Atomics.load(workerData.added, 0);
      if (n < 0) break;
      if (n === 0) continue;
      for (let i = 0; i < 1024; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        const k = x % n; // a key added before n was published: present in the table
        const id = view.lookup(1, 0, (${SERVER} + (k & 255)) >>> 0, k, 0);
        reads++;
        if (id < 0) { missed++; continue; }
        hits++;
        const h = expectHost(k, 0);
        if (view.host !== h || view.flags !== (h >>> 24)) { torn++; example ??= { k, id, host: view.host, want: h }; }
      }
    }
    parentPort.postMessage({ reads, hits, torn, missed, raced: view.raced, example });
  `, { eval: true, workerData: { shared: join(__dirname, 'shared.js'), sas: table.sharedArrays(), added } });
  assert.equal(await new Promise((r) => worker.once('message', r)), 'ready');
  const result = new Promise<{ reads: number; hits: number; torn: number; missed: number; raced: number; example: unknown }>((r) => worker.once('message', r));
  for (let k = 0; k < K; k++) {
    const h = expectHost(k, 0);
    assert.ok(table.add(SaKind.ESP_IN, 0, (SERVER + (k & 255)) >>> 0, h, k, 0, 0, 0, h >>> 24) >= 0);
    Atomics.store(added, 0, k + 1);
    if ((k & 1023) === 0) await new Promise((r) => setImmediate(r)); // let the reader run between doublings too
  }
  Atomics.store(added, 0, -1);
  const r = await result;
  await worker.terminate();
  t.diagnostic(`index ${slotsAtStart} → ${table.index.capacity} slots while ${K} records were added; reader: ${r.reads} lookups, ${r.hits} hits, ${r.missed} misses (${r.raced} raced), ${r.torn} torn`);
  assert.equal(slotsAtStart, 1024, 'a shared index starts small');
  assert.equal(table.index.capacity, 1 << 20, 'and doubled in place as records came');
  assert.equal(r.torn, 0, `torn reads: ${JSON.stringify(r.example)}`);
  // A reader spinning through a rehash misses (those packets would go to the owner); it hits otherwise.
  // How many of its reads land inside a rehash depends on scheduling (a descheduled writer mid-rehash
  // makes the reader miss until it runs again), so only ask for enough hits to make the torn check count.
  assert.ok(r.hits > 10_000, `the reader found what was there: ${JSON.stringify(r)}`);
  const view = new SharedSaView(table.sharedArrays());
  for (let k = 0; k < K; k += 7) assert.ok(view.lookup(SaKind.ESP_IN, 0, (SERVER + (k & 255)) >>> 0, k, 0) >= 0 && view.host === expectHost(k, 0), `key ${k} after the doublings`);
});
