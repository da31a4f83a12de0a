/** Journal replay (a kill -9 is a stage that never closed), compaction, the flood, rules, example config. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync, symlinkSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { natConfigSchema, type NatConfigInput } from './config';
import { NatStage } from './stage';
import { natRules } from './rules';
import { Verdict, Decision } from '../engine/stage';
import { Classified, classify } from '../packet/classify';
import { HOOK_PREROUTING } from '../engine/stage';
import { FakeServices, ip, out, inb, esp, ike, dstOf, IKE_SA_INIT, IKE_AUTH } from '../../test/kit/nat';

const PUB = ip('203.0.113.1');
const S = ip('198.51.100.10');
const A = ip('10.0.0.11');

function mk(over: Partial<NatConfigInput>): { st: NatStage; fs: FakeServices } {
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', ...over });
  const st = new NatStage(cfg);
  const fs = new FakeServices();
  st.init(fs);
  return { st, fs };
}

/** Host A's IKE_SA_INIT and IKE_AUTH request with S (the SA it creates not used yet). */
function negotiate(a: { st: NatStage; fs: FakeServices }): void {
    out(a.st, a.fs, ike(A, S, { ispi: 0x1111n, exchange: IKE_SA_INIT }));
    inb(a.st, a.fs, ike(S, PUB, { ispi: 0x1111n, rspi: 0x2222n, exchange: IKE_SA_INIT, flags: 0x20 }));
    out(a.st, a.fs, ike(A, S, { ispi: 0x1111n, rspi: 0x2222n, exchange: IKE_AUTH, msgId: 1 }));
}

test('journal: a restarted stage (no close, as after kill -9) keeps every learned mapping', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nat-'));
  try {
    const path = join(dir, 'nat.journal');
    const a = mk({ journal: { path } });
    negotiate(a);
    assert.equal(dstOf(inb(a.st, a.fs, esp(S, PUB, 0xcafe)).bytes), A);
    a.st.command('sa-pin', { host: '10.0.0.12', server: '198.51.100.10', spi: '0xbeef' });
    await a.st.compact(); // the start-up compaction
    await a.st.state.journal!.flushed(); // one event-loop turn: what a batch's changes wait for
    appendFileSync(path, 'P 1 2 3'); // a torn last line, as a crash mid-write leaves
    // "kill -9": no close(); a new stage replays the same file.
    const b = mk({ journal: { path } });
    assert.equal(b.st.state.journal?.badLines, 1);
    assert.deepEqual(b.st.state.journal?.replay.refused, { cut: 1 });
    const e = inb(b.st, b.fs, esp(S, PUB, 0xcafe, 7));
    assert.equal(e.verdict, Verdict.ACCEPT, 'no window needed after restart');
    assert.equal(dstOf(e.bytes), A);
    // Outbound SAs are not journaled: the host's next packet makes a new record, paired with the
    // restored inbound one, and owes nothing (before: counted as owed, and every packet probed).
    assert.equal(out(b.st, b.fs, esp(A, S, 0xd00d)).verdict, Verdict.ACCEPT);
    assert.equal(b.st.state.learning.owed(S, A, 0), 0);
    const i = inb(b.st, b.fs, ike(S, PUB, { ispi: 0x1111n, rspi: 0x2222n, exchange: 37, flags: 0x20 }));
    assert.equal(dstOf(i.bytes), A, 'IKE SA with its responder SPI restored');
    assert.equal(dstOf(inb(b.st, b.fs, esp(S, PUB, 0xbeef)).bytes), ip('10.0.0.12'), 'pin restored');
    const list = b.st.command('sa-list', {}) as { esp_in: { flags: string[] }[] }[];
    assert.ok(list.some((g) => g.esp_in.some((r) => r.flags.includes('restored'))));
    // The restart compacted the journal: 3 live records (IKE, ESP in, pin), the torn line gone.
    await b.st.compact();
    assert.equal(readFileSync(path, 'utf8').trim().split('\n').length, 3);
    await b.st.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('journal: a host restored with an IKE SA but no inbound ESP SA is owed one (its exchange was in flight)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nat-'));
  try {
    const path = join(dir, 'nat.journal');
    const a = mk({ journal: { path } });
    negotiate(a);
    await a.st.state.journal!.flushed(); // one event-loop turn: what a batch's changes wait for
    // Stopped before the server used the new SA; after the restart it does.
    const b = mk({ journal: { path } });
    assert.equal(b.st.state.learning.owed(S, A, 0), 1);
    assert.equal(dstOf(inb(b.st, b.fs, esp(S, PUB, 0xcafe)).bytes), A, 'placed by elimination after the restart');
    await b.st.close();
    await a.st.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('journal: symlinks at the journal or its temp file are never followed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nat-'));
  try {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'root-only data\n');
    // A link planted at the temp name: compaction removes the link and writes a file of its own.
    const path = join(dir, 'nat.journal');
    symlinkSync(victim, `${path}.tmp`);
    const a = mk({ journal: { path } });
    negotiate(a);
    await a.st.state.journal!.flushed();
    await a.st.close();
    const b = mk({ journal: { path } });
    await b.st.close();
    assert.equal(readFileSync(victim, 'utf8'), 'root-only data\n', 'the link target is untouched');
    assert.ok(!lstatSync(path).isSymbolicLink());
    // The journal itself a link: refused with a clear error, the target untouched.
    const path2 = join(dir, 'other.journal');
    symlinkSync(victim, path2);
    assert.throws(() => mk({ journal: { path: path2 } }), /symlink|ELOOP|link/i);
    assert.equal(readFileSync(victim, 'utf8'), 'root-only data\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('journal compaction keeps the file proportional to live records', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nat-'));
  try {
    const path = join(dir, 'nat.journal');
    const a = mk({ journal: { path, compact_slack: 16 } });
    for (let k = 0; k < 200; k++) {
      a.st.command('sa-pin', { host: '10.0.0.12', server: '198.51.100.10', spi: 0x100 + k });
      a.st.command('sa-unpin', { server: '198.51.100.10', spi: 0x100 + k });
      a.st.tick(a.fs.time);
    }
    // Every change above came while the first compaction waited for the event loop: it carries
    // them as its tail; the next one finds nothing changed.
    await a.st.compact();
    a.st.tick(a.fs.time);
    await a.st.compact();
    await a.st.state.journal!.flushed();
    const lines = readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).length;
    assert.ok(lines <= 18, `journal has ${lines} lines for 0 live records`);
    await a.st.close();
    writeFileSync(path, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('flood: 1M inbound ESP with random unknown SPIs creates no state and no memory growth', () => {
  const { st, fs } = mk({ journal: { path: null } });
  out(st, fs, ike(A, S, { ispi: 0x1111n, exchange: IKE_SA_INIT })); // the server is a known peer
  const sas = st.state.sas.count;
  const pkt = esp(S, PUB, 1, 1, 100);
  const info = new Classified();
  const d = new Decision();
  const ctx = { bytes: pkt, offset: 0, length: pkt.length, capacity: pkt.length, mark: 0, indev: 1, outdev: 2, hook: HOOK_PREROUTING, queue: 0, info };
  let seed = 99;
  let drops = 0;
  const flood = (n: number): void => {
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      pkt[20] = seed >>> 24; pkt[21] = seed >>> 16; pkt[22] = seed >>> 8; pkt[23] = seed | 1;
      classify(info, pkt, 0, pkt.length);
      d.reset();
      st.process(ctx, d);
      if (d.verdict === Verdict.DROP) drops++;
    }
  };
  flood(50_000); // warm up the JIT
  if (global.gc) global.gc();
  const m0 = process.memoryUsage();
  const t0 = process.hrtime.bigint();
  flood(1_000_000);
  const ns = Number(process.hrtime.bigint() - t0) / 1_000_000;
  if (global.gc) global.gc();
  const m1 = process.memoryUsage();
  assert.equal(drops, 1_050_000);
  assert.equal(st.state.sas.count, sas, 'no SA created');
  assert.equal(st.state.hosts.count, 1, 'no host created');
  const grew = (m1.heapUsed - m0.heapUsed) + (m1.arrayBuffers - m0.arrayBuffers);
  console.log(`# flood: ${ns.toFixed(0)} ns/packet (classify + nat), heap+buffers grew ${(grew / 1024).toFixed(0)} KiB`);
  assert.ok(grew < 8 * 1048576, `memory grew ${grew} bytes`);
});

test('rules: notrack, queue and forward rules for the configured flows', () => {
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'wan0', lan_interfaces: ['lan0'], servers: ['198.51.100.10'], queue: 7 });
  const rs = natRules(cfg);
  const text = rs.iptables.map((r) => `${r.table} ${r.chain} ${r.args.join(' ')}`);
  assert.ok(text.includes('raw PREROUTING -i lan0 -d 198.51.100.10 -p esp -j CT --notrack'));
  assert.ok(text.includes('raw PREROUTING -i wan0 -s 198.51.100.10 -d 203.0.113.1/32 -p udp -m multiport --dports 500,4500 -j CT --notrack'));
  assert.ok(text.includes('mangle PREROUTING -i wan0 -s 198.51.100.10 -d 203.0.113.1/32 -p esp -m conntrack --ctstate UNTRACKED -j NFQUEUE --queue-num 7'));
  assert.ok(text.includes('mangle POSTROUTING -o wan0 -d 198.51.100.10 -p esp -m conntrack --ctstate UNTRACKED -j NFQUEUE --queue-num 7'));
  assert.ok(text.includes('filter FORWARD -i wan0 -o lan0 -p esp -m conntrack --ctstate UNTRACKED -j ACCEPT'));
  assert.equal(natRules({ ...cfg, enabled: false }).iptables.length, 0);
});

test('examples/nat.yaml validates and documents every limit and timeout', () => {
  const doc = parse(readFileSync(join(__dirname, '../../../examples/nat.yaml'), 'utf8')) as { nat: unknown };
  const cfg = natConfigSchema.parse(doc.nat);
  assert.deepEqual(cfg.public, ['203.0.113.1']);
  const text = readFileSync(join(__dirname, '../../../examples/nat.yaml'), 'utf8');
  for (const k of [...Object.keys(cfg.limits), ...Object.keys(cfg.timeouts)]) assert.ok(text.includes(`${k}:`), `example lacks ${k}`);
  assert.throws(() => natConfigSchema.parse({ ...(doc.nat as object), bogus: 1 }));
  assert.throws(() => natConfigSchema.parse({ public: ['10.0.0.300'], wan_interface: 'x' }));
});
