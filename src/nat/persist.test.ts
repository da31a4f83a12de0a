/**
 * Journal replay validation (counted by reason), caps at replay, the sync policies, compaction
 * while changes keep coming, and the degraded mode on a real ENOSPC (/dev/full).
 * The full-tmpfs and read-only-remount cases run in test/netns/journal-faults.test.ts (root).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { natConfigSchema, type NatConfigInput } from './config';
import { NatStage } from './stage';
import { Journal, type JournalEntry } from './journal';
import { FakeServices, IKE_SA_INIT, ike, ip, out } from '../../test/kit/nat';

const PUB = ip('203.0.113.1');
const S = ip('198.51.100.10');

function withDir(fn: (dir: string) => Promise<void> | void): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-persist-'));
    // Retries: a journal's asynchronous writes (compaction's temp file) may still land while it goes.
    try { await fn(dir); } finally { rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }); }
  };
}

function mk(over: Partial<NatConfigInput>, log?: { warn(o: object, m: string): void; error(o: object, m: string): void }): NatStage {
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', ...over });
  const st = new NatStage(cfg, { log });
  st.init(new FakeServices());
  return st;
}

const entry = (spi: number, host = ip('10.0.0.11')): JournalEntry => ({
  kind: 1, pub: PUB, server: S, host, a: spi, b: 0, rh: 0, rl: 0, flags: 0, created: 1_700_000_000_000,
});

test('replay: every record is validated; refusals are counted by reason and shown in stats', withDir(async (dir) => {
  const path = join(dir, 'nat.journal');
  const good = Journal.putLine(entry(0xcafe));
  writeFileSync(path, [
    good.trim(),
    `P 0 ${PUB} ${S} ${ip('10.0.0.11')} 77 0 0 0 0 1`, // kind 0: the ghost record of old
    `P 9 ${PUB} ${S} ${ip('10.0.0.11')} 78 0 0 0 0 1`,
    `P 257 ${PUB} ${S} ${ip('10.0.0.11')} 79 0 0 0 0 1`,
    `P 1 ${PUB} ${S} 0 80 0 0 0 0 1`, // host 0.0.0.0
    `P 1 ${PUB} ${S} ${ip('10.0.0.11')} -1 0 0 0 0 1`,
    `P 1 ${PUB} ${S} ${ip('10.0.0.11')} 1e20 0 0 0 0 1`,
    `P 1 ${PUB} ${S} ${ip('10.0.0.11')} 99999999999 0 0 0 0 1`,
    `P 1 ${PUB} ${S} ${ip('10.0.0.11')} 4294967296 0 0 0 0 1`,
    `P 1 ${PUB} ${S} ${ip('10.0.0.11')} 0 0 0 0 0 1`, // SPI 0
    `P 1 ${PUB} ${S} ${ip('10.0.0.11')} 81 0 0 0 300 1`, // flags > 255
    `P 1 ${PUB} ${S} ${ip('10.0.0.11')} 82 0 0 0 0 ${Date.now() + 10 * 86_400_000}`, // from the future
    'garbage line',
    'x'.repeat(5000),
    `D 1 ${PUB} ${S} 0 0`,
    `P 1 ${PUB} ${S} ${ip('10.0.0.11')} 83 0 0 0`, // cut short: no newline
  ].join('\n'));
  const st = mk({ journal: { path } });
  const j = st.state.journal!;
  assert.deepEqual(j.replay.refused, { bad_kind: 3, bad_address: 1, out_of_range: 1, malformed: 4, bad_spi: 2, bad_field: 2, too_long: 1, cut: 1 });
  assert.equal(st.state.sas.count, 1, 'only the valid record');
  const stats = st.stats() as { journal: { replay: { refused: Record<string, number>; records: number } } };
  assert.equal(stats.journal.replay.refused.bad_kind, 3);
  assert.equal(stats.journal.replay.records, 1);
  await st.compact();
  assert.equal(readFileSync(path, 'utf8'), good.replace(' 0 1700000000000', ` 4 1700000000000`), 'compacted to the one record (restored flag)');
  await st.close();
}));

test('replay: a cap reached while restoring is an error that names the cap, and leaves the file alone', withDir((dir) => {
  const path = join(dir, 'nat.journal');
  let text = '';
  for (let i = 1; i <= 40; i++) text += Journal.putLine(entry(i, ip('10.0.0.11') + (i % 4)));
  writeFileSync(path, text);
  assert.throws(() => mk({ journal: { path }, limits: { max_sas: 32 } }), /record 33 of 40 hits nat\.limits\.max_sas \(32\)/);
  assert.throws(() => mk({ journal: { path }, limits: { max_sas_per_host: 4 } }), /nat\.limits\.max_sas_per_host \(4\)/);
  assert.throws(() => mk({ journal: { path }, limits: { max_hosts: 2 } }), /nat\.limits\.max_hosts \(2\)/);
  assert.equal(readFileSync(path, 'utf8'), text);
  const st = mk({ journal: { path } });
  assert.equal(st.state.sas.count, 40);
  st.close();
}));

test('replay: a journal path that is a directory names the file', withDir((dir) => {
  const path = join(dir, 'nat.journal');
  mkdirSync(path);
  assert.throws(() => mk({ journal: { path } }), (e: Error) => e.message.includes(`NAT journal ${path} is a directory`));
}));

test('compaction: changes made while it runs are kept (200k records, thousands of changes meanwhile)', withDir(async (dir) => {
  const path = join(dir, 'nat.journal');
  const st = mk({ journal: { path, compact_slack: 16 }, limits: { max_sas: 1 << 21, max_sas_per_host: 1 << 21, max_hosts_per_server: 1 << 16 } });
  await st.compact();
  const s = st.state;
  const now = 0;
  const h = s.host(ip('10.0.0.11'), now);
  for (let i = 1; i <= 200_000; i++) s.addSa(1, 0, S, h, i, 0, 0, now, true, 1);
  await s.journal!.flushed();
  const running = st.compact();
  // While the compaction walks the table: remove, re-add and add records.
  let k = 0;
  const churn = setInterval(() => {
    for (let n = 0; n < 2000; n++, k++) {
      const id = s.sas.find(1, 0, S, k + 1, 0);
      if (id >= 0) s.removeSa(id);
      s.addSa(1, 0, S, h, 300_000 + k, 0, 0, now, true, 1);
    }
  }, 1);
  await running;
  clearInterval(churn);
  await s.journal!.flushed();
  assert.ok(k > 0, 'changes happened during the compaction');
  const st2 = mk({ journal: { path }, limits: { max_sas: 1 << 21, max_sas_per_host: 1 << 21, max_hosts_per_server: 1 << 16 } });
  assert.equal(st2.state.sas.count, s.sas.count, 'replay after the compaction gives the same table');
  assert.equal(st2.state.journal!.badLines, 0);
  await st.close();
  await st2.close();
}));

test('sync: always fdatasyncs every write; batch every interval; none never', withDir(async (dir) => {
  for (const sync of ['always', 'batch', 'none'] as const) {
    const j = new Journal(join(dir, `j-${sync}`), { slack: 16, sync, intervalMs: 10 });
    j.load();
    j.openAppend();
    for (let i = 1; i <= 5; i++) { j.put(entry(i)); await j.flushed(); }
    // A batch fsync runs on the thread pool: on a loaded machine it may take longer than the interval.
    for (const end = Date.now() + 5000; sync === 'batch' && j.fsyncs === 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 40));
    if (sync === 'always') assert.equal(j.fsyncs, 5);
    else if (sync === 'batch') assert.ok(j.fsyncs >= 1 && j.fsyncs <= 5, `batch: ${j.fsyncs} fsyncs`);
    else assert.equal(j.fsyncs, 0);
    j.close();
    assert.equal(readFileSync(join(dir, `j-${sync}`), 'utf8').split('\n').length, 6);
  }
}));

test('ENOSPC (/dev/full): the journal degrades, raises the alarm once, counts lost changes; packets go on', async () => {
  const errors: object[] = [];
  const j = new Journal('/dev/full', { slack: 16, onError: (e, what) => errors.push({ code: e.code, what }) });
  j.openAppend();
  j.put(entry(1));
  await j.flushed();
  assert.equal(j.degraded, true);
  assert.equal(j.lastError, 'write: ENOSPC');
  for (let i = 2; i < 100; i++) j.put(entry(i));
  await j.flushed();
  assert.equal(errors.length, 1, 'one alarm, not one per change');
  assert.equal(j.lost, 99);
  j.close();
});

test('a batch\'s journal lines go out in one write at its end (batchEnd, before its verdicts); outside a batch at once', withDir((dir) => {
  const path = join(dir, 'nat.journal');
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path } });
  const st = new NatStage(cfg, {});
  const fs = new FakeServices();
  st.init(fs);
  const j = st.persist!.journal;
  const lines = (): number => readFileSync(path, 'utf8').split('\n').filter((l) => l.startsWith('P ')).length;
  const before = j.appendWrites;
  st.batchStart();
  for (let i = 1; i <= 3; i++) out(st, fs, ike(ip(`10.0.0.${i}`), S, { ispi: BigInt(i), exchange: IKE_SA_INIT }));
  assert.equal(st.state.sas.count, 3);
  assert.equal(lines(), 0, 'nothing written inside the batch');
  st.batchEnd();
  assert.equal(lines(), 3, 'every new SA on disk (page cache) when the batch ends');
  assert.equal(j.appendWrites - before, 1, 'in one write');
  out(st, fs, ike(ip('10.0.0.4'), S, { ispi: 4n, exchange: IKE_SA_INIT }));
  assert.equal(lines(), 4, 'outside a batch (a held packet released by a timer): written at once');
  assert.equal(j.appendWrites - before, 2);
  void st.close();
}));
