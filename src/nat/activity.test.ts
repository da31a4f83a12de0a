import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ActivityCache } from './activity';
import { SaKind, SaTable } from './table';

const SERVER = 0xc6336401;
const add = (t: SaTable, spi: number): number => t.add(SaKind.ESP_IN, 0, SERVER, 0x0a000001, spi, 0, 0, 0, 0);

test('a worker\'s packet counts reach the shared table when flushed, not per packet', () => {
  const t = new SaTable(8192, 1024, { shared: true });
  const a = add(t, 1), b = add(t, 2);
  const c = new ActivityCache(t.pkts, t.bytes, t.seq);
  for (let i = 0; i < 5; i++) c.add(a, 100);
  c.add(b, 1400);
  assert.equal(t.pkts[a], 0, 'nothing written to the shared arrays yet');
  c.flush();
  assert.deepEqual([t.pkts[a], t.bytes[a], t.pkts[b], t.bytes[b]], [5, 500, 1, 1400]);
  c.add(a, 60);
  c.flush();
  c.flush();
  assert.deepEqual([t.pkts[a], t.bytes[a]], [6, 560], 'each count added once');
});

test('two records on one slot: the one leaving spills its counts first', () => {
  const t = new SaTable(8192, 1024, { shared: true });
  const ids: number[] = [];
  for (let i = 0; i <= 4096; i++) ids.push(add(t, 1000 + i));
  const [first, clash] = [ids[0]!, ids[4096]!];
  assert.equal(first & 4095, clash & 4095);
  const c = new ActivityCache(t.pkts, t.bytes, t.seq);
  c.add(first, 10); c.add(first, 10);
  c.add(clash, 20);
  assert.deepEqual([t.pkts[first], t.bytes[first], t.pkts[clash]], [2, 20, 0]);
  c.flush();
  assert.deepEqual([t.pkts[clash], t.bytes[clash]], [1, 20]);
});

test('counts of a record removed before the flush are dropped, never given to the record that reuses its id', () => {
  const t = new SaTable(64, 16, { shared: true });
  const a = add(t, 1);
  const c = new ActivityCache(t.pkts, t.bytes, t.seq);
  c.add(a, 100); c.add(a, 100);
  t.remove(a);
  const b = add(t, 2);
  assert.equal(b, a, 'the id was reused');
  c.flush();
  assert.deepEqual([t.pkts[b], t.bytes[b]], [0, 0]);
  assert.equal(c.dropped, 2);
  // The new record counts from here.
  c.add(b, 50);
  c.flush();
  assert.deepEqual([t.pkts[b], t.bytes[b]], [1, 50]);
});
