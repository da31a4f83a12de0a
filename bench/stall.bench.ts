/**
 * Longest batch gap while the NAT does its housekeeping: a 1M-SA journal compaction, a 200k-SA idle
 * expiry, and a 1M-SA `sa-list` (streamed), each against a baseline with no housekeeping measured in
 * the same run: by the same rig, right after the housekeeping ends, for as long as it took (a rare
 * stall of the machine is as likely to land in either).
 *   node dist/bench/stall.bench.js [--sas N] [--expire N] [--list N]
 * Batches of 64 inbound ESP packets (pinned SPIs, so every one is translated) go through
 * Engine.handleBatch, one offered every millisecond (a timer: 64 k packets/s), as the addon's
 * uv_poll would hand them over. The figure is the longest interval between two consecutive batch
 * returns (the moment the addon sends verdicts; ~1.1 ms when nothing is in the way): everything the
 * event loop did in between (compaction slices, I/O callbacks, ticks inside handleBatch) is in it.
 * The listing goes through the real control socket to a reader in another process (as `sluice sa`).
 * Run it under `chrt -f 10` on a shared machine, so that other processes' load is not measured; the
 * timer pacing lets the process sleep, so the kernel's real-time throttling never kicks in.
 * The journal is on the machine's disk (os.tmpdir()).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { M_CAPACITY, M_ID, M_LENGTH, M_OFFSET, META_STRIDE, type Batch } from '../src/io/batch-layout';
import { Interfaces } from '../src/io/interfaces';
import { Engine } from '../src/engine/engine';
import { natConfigSchema } from '../src/nat/config';
import { NatStage } from '../src/nat/stage';
import { esp, ip } from '../test/kit/nat';
import { startControlServer } from '../src/control/server';
import { spawn } from 'node:child_process';
import { Gaps } from './gaps';
import { numArg } from './args';

const SAS = numArg('--sas', 1_000_000);
const EXPIRE = numArg('--expire', 200_000);
const LIST = numArg('--list', 1_000_000);
const PUB = ip('203.0.113.1');
const S = ip('198.51.100.10');
const BATCH = 64;
/** The `sluice sa` side of the listing, in another process: reads the stream, counts chunks and bytes. */
const READER = `
process.stdin.once('data', (path) => {
const s = require('node:net').connect(path.toString().trim());
let bytes = 0, chunks = 0, tail = ' '.repeat(16);
s.on('connect', () => s.write(JSON.stringify({ cmd: 'stage', stage: 'nat', name: 'sa-list', args: { stream: true } }) + '\\n'));
s.on('data', (d) => {
  bytes += d.length;
  const t = tail + d.toString('latin1');
  for (let i = t.indexOf('{"chunk":', 8); i >= 0; i = t.indexOf('{"chunk":', i + 1)) chunks++;
  tail = t.slice(-16).padStart(16);
  if (t.endsWith('{"end":true}\\n')) { console.log(chunks + ' chunks, ' + (bytes / 1e6).toFixed(1) + ' MB of JSON'); s.destroy(); process.exit(0); }
});
});`;

function batchOf(packets: Uint8Array[]): Batch {
  const SLOT = 256;
  const slab = new Uint8Array(SLOT * packets.length);
  const meta = new Uint32Array(META_STRIDE * packets.length);
  packets.forEach((p, i) => {
    slab.set(p, i * SLOT);
    const b = i * META_STRIDE;
    meta[b + M_ID] = i + 1;
    meta[b + M_OFFSET] = i * SLOT;
    meta[b + M_LENGTH] = p.length;
    meta[b + M_CAPACITY] = SLOT;
  });
  return { slab, meta, count: packets.length };
}

interface Rig { engine: Engine; stage: NatStage; src: number; batch: Batch; fresh: Batch; dir: string }

function rig(opts: { espIdle?: number } = {}): Rig {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-stall-'));
  const cfg = natConfigSchema.parse({
    public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: join(dir, 'nat.journal') },
    limits: { max_sas: 1 << 21, max_sas_per_host: 1 << 21, max_hosts_per_server: 1 << 16, max_hosts: 1 << 17 },
    timeouts: { esp_idle_s: opts.espIdle ?? 900 },
  });
  const stage = new NatStage(cfg, { stateDir: dir });
  const engine = new Engine({ held: { max: 16, timeoutMs: 1000, defaultVerdict: 'drop' }, interfaces: Interfaces.fromList([]), tickMs: 100 });
  const src = engine.addSource({ release() {} }, 0, { defaultVerdict: 'accept', onInvalid: 'drop' });
  engine.setPipeline([stage]);
  // 64 pinned mappings the batches hit (pinned: never idle-expired).
  const pkts: Uint8Array[] = [];
  for (let i = 0; i < BATCH; i++) {
    stage.command('sa-pin', { host: `10.9.0.${i + 1}`, server: '198.51.100.10', spi: 0x7000 + i });
    pkts.push(esp(S, PUB, 0x7000 + i));
  }
  const batch = batchOf(pkts);
  return { engine, stage, src, batch, fresh: batchOf(pkts), dir };
}

/** Adds n inbound ESP SAs spread over hosts 10.x.y.z (journaled, like learned ones). */
function populate(st: NatStage, n: number): void {
  const s = st.state;
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const h = s.host((ip('10.16.0.0') + (i >>> 6)) >>> 0, now);
    s.addSa(1, 0, S, h, 0x100000 + i, 0, 0, now, true, now);
  }
}

/** Runs batches back to back until `done()` (checked every batch) and returns the gaps (ms). */
interface GapStats { max: number; p999: number; batches: number; ms: number; over5: number[]; start: number }

function drive(r: Rig, done: () => boolean, minMs = 300): Promise<GapStats> {
  return new Promise((resolve) => {
    const gaps = new Gaps();
    const t0 = performance.now();
    let last = t0;
    const step = (): void => {
      // The verdict slots are rewritten by every batch: restore the original packets first.
      r.batch.slab.set(r.fresh.slab);
      r.engine.handleBatch(r.src, r.batch);
      const t = performance.now();
      gaps.add(t - last, t - t0);
      last = t;
      if (done() && t - t0 >= minMs) {
        resolve({ max: gaps.max, p999: gaps.quantile(0.999), batches: gaps.count, ms: t - t0, over5: gaps.over5, start: t0 });
      } else {
        setTimeout(step, 1);
      }
    };
    setTimeout(step, 1);
  });
}

const fmt = (x: GapStats): string =>
  `longest gap ${x.max.toFixed(2)} ms, p99.9 ≤ ${x.p999.toFixed(2)} ms over ${x.batches} batches in ${(x.ms / 1000).toFixed(1)} s${x.over5.length ? ` (gaps > 5 ms at ${x.over5.join(', ')} ms; run started ${Math.round(x.start)} ms after process start, for --trace-gc)` : ''}`;

async function main(): Promise<void> {
  console.log(`# node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  {
    const r = rig();
    populate(r.stage, SAS);
    await r.stage.state.journal!.flushed();
    await r.stage.compact();
    let finished = false;
    const t0 = performance.now();
    void r.stage.compact().then(() => { finished = true; });
    const during = await drive(r, () => finished);
    const took = performance.now() - t0;
    const base = await drive(r, () => true, during.ms);
    console.log(`compaction of ${SAS} SAs: took ${(took / 1000).toFixed(2)} s; ${fmt(during)}`);
    console.log(`  baseline (same rig, right after, as long, no housekeeping): ${fmt(base)}; longest compaction slice ${r.stage.persist!.longestSliceMs.toFixed(2)} ms`);
    await r.stage.close();
    rmSync(r.dir, { recursive: true, force: true });
  }
  {
    const r = rig({ espIdle: 1 });
    populate(r.stage, EXPIRE);
    await r.stage.state.journal!.flushed();
    await r.stage.compact();
    await new Promise((res) => setTimeout(res, 1100)); // every populated SA is now idle past esp_idle_s
    const t0 = performance.now();
    const during = await drive(r, () => r.stage.state.sas.count <= BATCH);
    const took = performance.now() - t0;
    const base = await drive(r, () => true, during.ms);
    console.log(`idle expiry of ${EXPIRE} SAs: took ${(took / 1000).toFixed(2)} s; ${fmt(during)}`);
    console.log(`  baseline: ${fmt(base)}`);
    await r.stage.close();
    rmSync(r.dir, { recursive: true, force: true });
  }
  {
    // The reader process is started before the tables are filled: forking a process with hundreds
    // of MB makes every later write to them a copy-on-write fault (milliseconds that an operator's
    // `sluice sa`, started from a shell, does not cause).
    // At normal priority (chrt -o): an operator's shell is not real-time, and a SCHED_FIFO reader
    // would hold a core without time slices while node starts up (measured: 7 ms gaps).
    const reader = spawn('chrt', ['-o', '0', process.execPath, '-e', READER], { stdio: ['pipe', 'pipe', 'inherit'] });
    let got = '';
    let finished = false;
    reader.stdout.setEncoding('utf8').on('data', (d: string) => { got += d; });
    reader.on('exit', (code) => { if (code !== 0) got += `reader exited with ${code}`; finished = true; });
    const r = rig();
    populate(r.stage, LIST);
    await r.stage.state.journal!.flushed();
    await r.stage.compact();
    // The listing as `sluice sa` gets it: through the control socket, read by another process.
    const sock = join(r.dir, 'control.sock');
    const server = await startControlServer(sock, (req) => r.stage.command(req.name ?? '', req.args ?? {}));
    const t0 = performance.now();
    reader.stdin.end(`${sock}\n`);
    const during = await drive(r, () => finished);
    const took = performance.now() - t0;
    const base = await drive(r, () => true, during.ms);
    console.log(`sa-list of ${LIST} SAs (streamed over the control socket to another process: ${got.trim()}): took ${(took / 1000).toFixed(2)} s; ${fmt(during)}`);
    console.log(`  baseline: ${fmt(base)}`);
    reader.kill();
    server.close();
    await r.stage.close();
    rmSync(r.dir, { recursive: true, force: true });
  }
}

void main();
