/**
 * The streamed `sa-list` text (listjson.ts) against the object listing (commands.ts saList, which
 * it replaced on the stream): JSON.stringify of the objects, byte for byte, for random tables with
 * edge values, with and without filters and in chunks as small as one group; plus records that
 * change while the listing runs, and a group larger than a piece.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natConfigSchema } from './config';
import { NatStage } from './stage';
import { saList } from './commands';
import { saListText, GROUP_PIECE, type ListAt } from './listjson';
import { saFilter } from './admin';
import { FakeServices } from '../../test/kit/nat';

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
}

function stage(publics: string[]): NatStage {
  const cfg = natConfigSchema.parse({ public: publics, wan_interface: 'eth1', journal: { path: null },
    limits: { max_sas: 1 << 21, max_sas_per_host: 1 << 21, max_hosts_per_server: 1 << 16, max_hosts: 1 << 17 } });
  const st = new NatStage(cfg);
  st.init(new FakeServices());
  return st;
}

const EDGE_COUNT = [0, 1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 60, 1e21, 1.5, -1, NaN, Infinity];
const EDGE_HOST = [0, 0xffffffff, 0x0a000001, 0x0a000002, 0x80000000, 0x7fffffff, 0x00010000, 0x0000ffff];

/** A table filled straight through SaTable (no caps, odd values): kinds, flags, via, pairs, counters, times. */
function randomTable(seed: number, n: number): NatStage {
  const r = rng(seed);
  const st = stage(['203.0.113.1', '203.0.113.2', '198.51.100.255']);
  const sas = st.state.sas;
  const pick = (edges: number[], random: () => number): number => (r() % 4 === 0 ? edges[r() % edges.length]! : random());
  const hosts = Array.from({ length: 40 }, () => pick(EDGE_HOST, r));
  const servers = Array.from({ length: 6 }, () => pick([0, 0xffffffff, 0x00ff0000], r));
  for (let i = 0; i < n; i++) {
    const id = sas.add(1 + (r() % 3), r() % 3, servers[r() % servers.length]!, hosts[r() % hosts.length]!, r(), r() % 3 === 0 ? 0 : r(),
      pick([0, -5e6, 1e300, NaN], () => r() % 5_000_000), pick([0, 2e12, -1e13, 1e300], () => 1_700_000_000_000 + (r() % 1e9)), r() & 0xff);
    sas.rh[id] = r(); sas.rl[id] = r() % 2 ? 0 : r();
    sas.pkts[id] = pick(EDGE_COUNT, () => r() % 100000);
    sas.bytes[id] = pick(EDGE_COUNT, () => r() * 3);
    sas.via[id] = r() % 7; // 5 and 6 are not names: "seen", as rowOf says
    sas.pair[id] = r() % 2 ? -1 : r() % (id + 1);
  }
  for (let k = 0; k < n / 10; k++) sas.remove(r() % sas.top); // holes
  return st;
}

/** Concatenates the chunks' groups into one JSON array (each chunk is a JSON array). */
function streamed(st: NatStage, args: Record<string, unknown>, sliceMs: number, at: ListAt): { text: string; chunks: number } {
  const parts: string[] = [];
  for (const c of saListText(st.state, saFilter(args), sliceMs, at)) {
    if (c === null) continue;
    const t = c.toString('latin1');
    assert.ok(t.startsWith('[{') && t.endsWith('}]'), 'a chunk is a non-empty JSON array');
    parts.push(t.slice(1, -1));
  }
  return { text: `[${parts.join(',')}]`, chunks: parts.length };
}

test('streamed sa-list text equals JSON.stringify of the object listing, for random tables with edge values', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const st = randomTable(seed, 4000 + seed * 1000);
    const at: ListAt = { now: 4_000_000 + seed, wall: 1_700_000_500_000 + seed * 777 };
    const want = JSON.stringify(saList(st, {}, at));
    const one = streamed(st, {}, Infinity, at);
    assert.equal(one.text, want, `seed ${seed}`);
    const many = streamed(st, {}, 0, at); // a chunk per group
    assert.equal(many.text, want, `seed ${seed}, small chunks`);
    assert.ok(many.chunks > 10);
    // Filters: by host and by server.
    const g = saList(st, {}, at);
    const h = g[Math.floor(g.length / 2)]!;
    assert.equal(streamed(st, { host: h.host }, 0, at).text, JSON.stringify(saList(st, { host: h.host }, at)));
    assert.equal(streamed(st, { server: h.server }, 0, at).text, JSON.stringify(saList(st, { server: h.server }, at)));
    const spi = (h.esp_in[0] ?? h.esp_out[0] ?? h.ike[0])!.spi;
    assert.equal(streamed(st, { spi }, 0, at).text, JSON.stringify(saList(st, { spi }, at)));
  }
  const empty = stage(['203.0.113.1']);
  assert.equal(streamed(empty, {}, 0, { now: 0, wall: 0 }).chunks, 0, 'an empty table: no chunk at all');
});

test('records that go away or change while the listing runs are left out; the rest are listed once', () => {
  const st = randomTable(9, 20_000);
  const sas = st.state.sas;
  const at: ListAt = { now: 1, wall: 1 };
  const it = saListText(st.state, null, 0, at);
  const first = it.next(); // a slice of 1023 records is in the snapshot (0 ms slices)
  assert.equal(first.done, false);
  let removed = 0, moved = 0;
  for (let id = 0; id < 1023; id += 3) {
    if (sas.kind[id] === 0) continue;
    if (id % 2) { sas.remove(id); removed++; } else { sas.host[id] = (sas.host[id] + 1) >>> 0; moved++; }
  }
  const parts: string[] = [];
  if (first.value) parts.push(first.value.toString('latin1').slice(1, -1));
  for (let r = it.next(); !r.done; r = it.next()) if (r.value) parts.push(r.value.toString('latin1').slice(1, -1));
  const got = JSON.parse(`[${parts.join(',')}]`) as { ike: unknown[]; esp_in: unknown[]; esp_out: unknown[] }[];
  const rows = got.reduce((a, g) => a + g.ike.length + g.esp_in.length + g.esp_out.length, 0);
  assert.equal(rows, sas.count - moved, `${removed} removed and ${moved} moved records are not listed`);
});

test('a group larger than a piece comes as consecutive groups of the same host, public and server', () => {
  const st = stage(['203.0.113.1']);
  const n = GROUP_PIECE * 2 + 17;
  for (let i = 0; i < n; i++) st.state.sas.add(1, 0, 0xc6336410, 0x0a000001, 0x1000 + i, 0, 0, 0, 0);
  const at: ListAt = { now: 0, wall: 0 };
  const groups = JSON.parse(streamed(st, {}, Infinity, at).text) as { host: string; server: string; esp_in: { spi: string }[] }[];
  assert.equal(groups.length, 3);
  assert.ok(groups.every((g) => g.host === '10.0.0.1' && g.server === '198.51.100.16'));
  const whole = saList(st, {}, at)[0]!;
  assert.deepEqual(groups.flatMap((g) => g.esp_in), whole.esp_in, 'the same rows in the same order');
});
