/**
 * Longest batch gap while the NAT does its housekeeping: a 1M-SA journal compaction, a 200k-SA idle
 * expiry, and a 1M-SA `sa-list` (streamed), each against a baseline with no housekeeping measured in
 * the same run: by the same rig, right after the housekeeping ends, for as long as it took (a rare
 * stall of the machine is as likely to land in either).
 *   node dist/bench/stall.bench.js [--sas N] [--expire N] [--list N] [--rounds R] [--fifo PRIO]
 * (N are SA counts; 0 skips that measurement; R paired rounds of each: operation, then baseline.)
 * Batches of 64 inbound ESP packets (pinned SPIs, so every one is translated) go through
 * Engine.handleBatch, one offered every millisecond (a timer: 64 k packets/s), as the addon's
 * uv_poll would hand them over. The figure is the longest interval between two consecutive batch
 * returns (the moment the addon sends verdicts; ~1.1 ms when nothing is in the way): everything the
 * event loop did in between (compaction slices, I/O callbacks, ticks inside handleBatch) is in it.
 * The listing goes through the real control socket to a reader in another process (as `sluice sa`).
 * Real-time scheduling (`--fifo 10`, the default; root), so that other processes' load on a shared
 * machine is not what is measured: every thread of the process at SCHED_FIFO 10, the main thread at
 * 11; the timer pacing lets the process sleep, so the kernel's real-time throttling never kicks in.
 * Not `chrt -f 10 node ...` alone: with every thread at one priority, two of V8's background
 * TurboFan compile jobs (optimising code that just got hot) hold both CPUs of a 2-core machine for
 * 10-30 ms while the main thread waits in the run queue without a time slice (perf sched: the
 * 12.6 ms gap of a 1,000-SA listing). Nor the main thread alone: it then waits for V8's GC helper
 * threads, which other processes' load starves (gaps with no run-queue wait, slices of 6 ms). Each
 * gap says how much of it the main thread spent waiting for a CPU (gaps.ts).
 * Each gap over 5 ms also says which CPU the thread was on and how much hypervisor steal that CPU
 * accounted around it (steal.ts: /proc/stat ticks sampled at 1 kHz, and clock less clock_task from
 * debugfs, to the ns, every 20 ms), and every measurement prints a hiccup control over the same
 * time: a 1 ms timer loop in a process of its own, no sluice code, its main thread at FIFO + 2
 * (steal-sampler.ts). What the control shows, the platform did without sluice.
 * The journal is on the machine's disk (os.tmpdir()).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { M_CAPACITY, M_ID, M_LENGTH, M_OFFSET, META_STRIDE, type Batch } from '../src/io/batch-layout';
import { Interfaces } from '../src/io/interfaces';
import { Engine } from '../src/engine/engine';
import { natConfigSchema } from '../src/nat/config';
import { NatStage } from '../src/nat/stage';
import { esp, ip } from '../test/kit/nat';
import { startControlServer } from '../src/control/server';
import { execFileSync, spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { Gaps, ThreadClock, ThreadCpu, type LongGap } from './gaps';
import { numArg } from './args';
import { StealProbe, type ControlWindow } from './steal';

const SAS = numArg('--sas', 1_000_000);
const EXPIRE = numArg('--expire', 200_000);
const LIST = numArg('--list', 1_000_000);
const ROUNDS = numArg('--rounds', 1);
const FIFO = numArg('--fifo', 10);
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
interface GapStats {
  max: number; p50: number; p99: number; p999: number; batches: number; ms: number; over5: number[]; start: number;
  /** Longest gap less the main thread's run-queue wait in it, and the gaps over 5 ms (gaps.ts). */
  maxOwn: number; long: LongGap[];
  /** The hiccup control's gaps over the same time (steal.ts). */
  control: ControlWindow;
}

const clock = new ThreadClock();
const cpu = new ThreadCpu();
/** Started in main(), before the bench raises its own scheduling. */
let probe: StealProbe;
/** performance.now() + MONO = CLOCK_MONOTONIC in ms (to line gaps up with `perf record -k CLOCK_MONOTONIC`). */
const MONO = Number(process.hrtime.bigint()) / 1e6 - performance.now();

async function drive(r: Rig, done: () => boolean, minMs = 300): Promise<GapStats> {
  await probe.mark(); // the control's window starts with this measurement
  return new Promise((resolve) => {
    const gaps = new Gaps();
    const t0 = performance.now();
    let last = t0;
    clock.read();
    let wait = clock.waitMs;
    let lastCpu = cpu.read();
    const step = (): void => {
      // The verdict slots are rewritten by every batch: restore the original packets first.
      r.batch.slab.set(r.fresh.slab);
      r.engine.handleBatch(r.src, r.batch);
      const t = performance.now();
      clock.read();
      const c = cpu.read();
      gaps.add(t - last, t - t0, clock.waitMs - wait, lastCpu, c, t + MONO);
      last = t;
      wait = clock.waitMs;
      lastCpu = c;
      if (done() && t - t0 >= minMs) {
        void probe.mark().then((control) => resolve({ max: gaps.max, p50: gaps.quantile(0.5), p99: gaps.quantile(0.99), p999: gaps.quantile(0.999),
          batches: gaps.count, ms: t - t0, over5: gaps.over5, start: t0, maxOwn: gaps.maxOwn, long: gaps.long, control }));
      } else {
        setTimeout(step, 1);
      }
    };
    setTimeout(step, 1);
  });
}

const f2 = (x: number): string => x.toFixed(2);
const fmt = (x: GapStats, kind: string): string =>
  `longest gap ${f2(x.max)} ms (p50 ${f2(x.p50)}, p99 ${f2(x.p99)}, p99.9 ${f2(x.p999)}) over ${x.batches} batches in ${(x.ms / 1000).toFixed(1)} s; `
  + `longest gap less run-queue wait ${f2(x.maxOwn)} ms`
  + (x.long.length ? `; gaps > 5 ms [at ms: gap / run-queue wait in it, CPU, steal accounted on it in the gap and ${5.5} ms after]: ${x.long.map((g) => probe.describe(kind, g)).join(', ')} (run started ${Math.round(x.start)} ms after process start, for --trace-gc; CLOCK_MONOTONIC ${(x.start + MONO).toFixed(1)} ms, for perf -k CLOCK_MONOTONIC)` : '')
  + `\n            control (no sluice, same time): longest gap ${f2(x.control.max)} ms (p99.9 ${f2(x.control.p999)}) over ${x.control.count}; gaps > 5 ms: ${x.control.over5}`
  + (x.control.long.length ? ` [gap / run-queue wait, CPU, steal]: ${probe.describeControl(x.control)}` : '');

interface Round { during: GapStats; base: GapStats; tookMs: number; note: string }

/** Runs `rounds` rounds of one housekeeping operation, each with a baseline as long right after it. */
async function paired(name: string, once: () => Promise<Round>): Promise<void> {
  const rs: Round[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const r = await once();
    rs.push(r);
    console.log(`${name}, round ${i + 1}/${ROUNDS} (load ${loadavg()[0]!.toFixed(2)}): took ${(r.tookMs / 1000).toFixed(2)} s${r.note}`);
    console.log(`  during:   ${fmt(r.during, 'during')}`);
    console.log(`  baseline: ${fmt(r.base, 'baseline')}`);
  }
  const med = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[(s.length - 1) >> 1]! / 2 + s[s.length >> 1]! / 2; };
  console.log(`${name}: longest gap during ${rs.map((r) => f2(r.during.max)).join(' / ')} ms, baseline ${rs.map((r) => f2(r.base.max)).join(' / ')} ms; `
    + `median of per-round ratios ${f2(med(rs.map((r) => r.during.max / r.base.max)))}; longest gap less run-queue wait: during ${f2(Math.max(...rs.map((r) => r.during.maxOwn)))}, `
    + `baseline ${f2(Math.max(...rs.map((r) => r.base.maxOwn)))} ms; rounds over 5 ms: during ${rs.filter((r) => r.during.max > 5).length}, baseline ${rs.filter((r) => r.base.max > 5).length}, `
    + `control (no sluice) ${rs.filter((r) => r.during.control.max > 5 || r.base.control.max > 5).length} of ${rs.length}`);
}

async function compactionRound(): Promise<Round> {
  const r = rig();
  populate(r.stage, SAS);
  await r.stage.state.journal!.flushed();
  await r.stage.compact();
  let finished = false;
  const t0 = performance.now();
  r.stage.persist!.slice.longestMs = 0;
  void r.stage.compact().then(() => { finished = true; });
  const during = await drive(r, () => finished);
  const tookMs = performance.now() - t0;
  const base = await drive(r, () => true, during.ms);
  await r.stage.close();
  rmSync(r.dir, { recursive: true, force: true });
  return { during, base, tookMs, note: `; longest compaction slice ${f2(r.stage.persist!.slice.longestMs)} ms` };
}

async function expiryRound(): Promise<Round> {
  const r = rig({ espIdle: 1 });
  populate(r.stage, EXPIRE);
  await r.stage.state.journal!.flushed();
  await r.stage.compact();
  await new Promise((res) => setTimeout(res, 1100)); // every populated SA is now idle past esp_idle_s
  r.stage.persist!.slice.longestMs = 0;
  r.stage.idleSweep.slice.longestMs = 0;
  const t0 = performance.now();
  const during = await drive(r, () => r.stage.state.sas.count <= BATCH);
  const tookMs = performance.now() - t0;
  const base = await drive(r, () => true, during.ms);
  await r.stage.close();
  rmSync(r.dir, { recursive: true, force: true });
  return { during, base, tookMs, note: `; longest sweep slice ${f2(r.stage.idleSweep.slice.longestMs)} ms, longest compaction slice ${f2(r.stage.persist!.slice.longestMs)} ms` };
}

async function listingRound(): Promise<Round> {
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
  const tookMs = performance.now() - t0;
  const base = await drive(r, () => true, during.ms);
  reader.kill();
  server.close();
  await r.stage.close();
  rmSync(r.dir, { recursive: true, force: true });
  return { during, base, tookMs, note: ` (streamed over the control socket to another process: ${got.trim()})` };
}

/** SCHED_FIFO for every thread, one level higher for the main thread (see the header). */
async function realtime(): Promise<string> {
  if (FIFO <= 0) return 'normal scheduling';
  await stat(tmpdir()); // starts libuv's thread pool (all of its threads at once) before the main thread is raised
  for (const tid of readdirSync('/proc/self/task')) execFileSync('chrt', ['-f', '-p', String(FIFO), tid]);
  execFileSync('chrt', ['-f', '-p', String(FIFO + 1), String(process.pid)]); // pid = the main thread's tid
  return `SCHED_FIFO ${FIFO}, main thread ${FIFO + 1}`;
}

async function main(): Promise<void> {
  probe = new StealProbe(FIFO > 0 ? FIFO + 2 : 0);
  const sched = await realtime();
  console.log(`# node ${process.version}, ${sched}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}, ${ROUNDS} round(s)`);
  if (SAS > 0) await paired(`compaction of ${SAS} SAs`, compactionRound);
  if (EXPIRE > 0) await paired(`idle expiry of ${EXPIRE} SAs`, expiryRound);
  if (LIST > 0) await paired(`sa-list of ${LIST} SAs`, listingRound);
  for (const line of probe.summary()) console.log(`# ${line}`);
  probe.close();
  clock.close();
  cpu.close();
}

void main();
