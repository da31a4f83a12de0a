/**
 * Runs inside `unshare --mount --propagation private` (journal-faults.test.ts): mounts a small tmpfs
 * on DIR in its own mount namespace, puts a NAT stage's journal there, then makes the filesystem
 * fail for real (filled to ENOSPC, or remounted read-only for EROFS) while the stage keeps
 * translating packets. Prints one JSON line of findings for the parent test to judge.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { natConfigSchema } from '../../src/nat/config';
import { NatStage } from '../../src/nat/stage';
import { Verdict } from '../../src/engine/stage';
import { FakeServices, esp, inb, dstOf, ip } from '../kit/nat';

const [mode, dir] = process.argv.slice(2) as ['full' | 'ro', string];
const PUB = ip('203.0.113.1');
const S = ip('198.51.100.10');
const host = (i: number): string => `10.0.${(i >> 8) & 255}.${i & 255 || 1}`;

function stage(): { st: NatStage; fs: FakeServices; alarms: string[] } {
  const alarms: string[] = [];
  const cfg = natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: join(dir, 'nat.journal') } });
  const st = new NatStage(cfg, { log: { warn() {}, error: (o: object) => { alarms.push(JSON.stringify(o)); } } });
  const fs = new FakeServices();
  st.init(fs);
  return { st, fs, alarms };
}

function pin(st: NatStage, from: number, to: number): void {
  for (let i = from; i < to; i++) st.command('sa-pin', { host: host(i), server: '198.51.100.10', spi: 0x1000 + i });
}

/** Every pinned SPI still reaches its host through the stage (the packet path goes on). */
function translated(st: NatStage, fs: FakeServices, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const r = inb(st, fs, esp(S, PUB, 0x1000 + i));
    if (r.verdict === Verdict.ACCEPT && dstOf(r.bytes) === ip(host(i))) ok++;
  }
  return ok;
}

async function main(): Promise<void> {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'sluice-fault', dir]);
  let { st, fs, alarms } = stage();
  await st.compact();
  pin(st, 0, 100);
  await st.state.journal!.flushed();
  const filler = join(dir, 'filler');
  if (mode === 'full') {
    // Fill what is left of the tmpfs: the next journal write gets ENOSPC from the kernel.
    try { for (;;) writeFileSync(filler, Buffer.alloc(4096), { flag: 'a' }); } catch { /* ENOSPC: full */ }
  } else {
    // A filesystem with a file open for writing cannot be remounted read-only, so this is the
    // start-up case: sluice restarts on a read-only state directory (replay reads; opening fails).
    await st.close();
    execFileSync('mount', ['-o', 'remount,ro', dir]);
    ({ st, fs, alarms } = stage());
  }
  pin(st, 100, 3000);
  await st.state.journal!.flushed();
  const j = st.state.journal!;
  const during = { degraded: j.degraded, lastError: j.lastError, lost: j.lost, alarms: alarms.length,
    gauge: st.gauges().find((g) => g.name === 'nat_journal_degraded')?.value, translated: translated(st, fs, 3000) };
  // A compaction attempt (what the stage's tick does every 10 s) while the fault lasts fails and stays degraded.
  await st.compact();
  const retryWhileBroken = { degraded: j.degraded, sas: st.state.sas.count };
  if (mode === 'full') rmSync(filler);
  else execFileSync('mount', ['-o', 'remount,rw', dir]);
  await st.compact();
  await j.flushed();
  const after = { degraded: j.degraded, alarms, gauge: st.gauges().find((g) => g.name === 'nat_journal_degraded')?.value };
  pin(st, 3000, 3010);
  await j.flushed();
  // "kill -9" and a restart: a new stage replays the file the recovered journal wrote.
  const again = stage();
  const restart = { sas: again.st.state.sas.count, refused: again.st.state.journal!.badLines, translated: translated(again.st, again.fs, 3010) };
  process.stdout.write(`${JSON.stringify({ during, retryWhileBroken, after, restart })}\n`);
  await again.st.close();
  await st.close();
}

main().then(() => process.exit(0), (e: Error) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
