/** `sa-list` at scale: streamed in chunks, every row once, through the real control socket. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { natConfigSchema } from './config';
import { NatStage } from './stage';
import { formatSaChunk, formatSaTable, saListChunks, type SaListEntry } from './commands';
import { FakeServices, ip } from '../../test/kit/nat';
import { startControlServer } from '../control/server';
import { controlStream } from '../control/client';

const S = ip('198.51.100.10');

function big(n: number): NatStage {
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: null },
    limits: { max_sas: 1 << 21, max_sas_per_host: 1 << 21, max_hosts_per_server: 1 << 16, max_hosts: 1 << 17 } });
  const st = new NatStage(cfg);
  st.init(new FakeServices());
  const s = st.state;
  for (let i = 0; i < n; i++) {
    const h = s.host((ip('10.16.0.0') + (i >>> 4)) >>> 0, 0);
    s.addSa(1, 0, S, h, 0x100000 + i, 0, 0, 0, false, 0);
  }
  return st;
}

test('150k SAs (past the old Math.max(...rows) stack overflow): streamed chunks hold every SA once, in host order', async () => {
  const st = big(150_000);
  let rows = 0, chunks = 0, text = 0;
  let prev = -1;
  const seen = new Set<string>();
  for await (const bytes of saListChunks(st, {})) {
    const chunk = JSON.parse(bytes.toString('latin1')) as SaListEntry[];
    chunks++;
    for (const g of chunk) {
      const h = ip(g.host);
      assert.ok(h >= prev, 'hosts in numeric order');
      prev = h;
      for (const r of g.esp_in) { seen.add(r.spi); rows++; }
    }
    text += formatSaChunk(chunk).length;
  }
  assert.equal(rows, 150_000);
  assert.equal(seen.size, 150_000);
  assert.ok(chunks > 1, `${chunks} chunks`);
  assert.ok(text > 150_000 * 80);
  // The whole-table formatter (widths fitted to content) copes with the same size.
  const all = st.command('sa-list', {}) as SaListEntry[];
  assert.equal(formatSaTable(all).split('\n').length, 150_000 + 2);
});

test('streamed over the control socket: chunks arrive as they are made, the end is marked', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-list-'));
  const st = big(20_000);
  const server = await startControlServer(join(dir, 's.sock'), (req) => st.command(req.name ?? '', req.args ?? {}));
  try {
    let rows = 0, chunks = 0;
    await controlStream(join(dir, 's.sock'), { cmd: 'stage', stage: 'nat', name: 'sa-list', args: { stream: true } }, (c) => {
      chunks++;
      for (const g of c as SaListEntry[]) rows += g.esp_in.length;
    });
    assert.equal(rows, 20_000);
    assert.ok(chunks > 1);
    // A filter travels with the request; an error is an error, not an empty list.
    let one = 0;
    await controlStream(join(dir, 's.sock'), { cmd: 'stage', stage: 'nat', name: 'sa-list', args: { stream: true, host: '10.16.0.1' } }, (c) => {
      for (const g of c as SaListEntry[]) one += g.esp_in.length;
    });
    assert.equal(one, 16);
    await assert.rejects(controlStream(join(dir, 's.sock'), { cmd: 'stage', stage: 'nat', name: 'nope', args: {} }, () => {}), /unknown NAT command/);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
