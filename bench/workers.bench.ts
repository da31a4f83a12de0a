/**
 * workers: 2 against one thread, in process on the fake binding (no kernel): NAT + 100 steer rules
 * on the realistic mix of bench/workers-mix.ts, paired round by round (median of per-round ratios).
 *   single: one thread runs today's sluice (Engine + policy/steer/NAT, private tables) — the baseline;
 *   workers: two threads run WorkerCore (src/cli/worker-thread.ts) on queues 5 and 6, NAT over the
 *            shared table owned by this (main) thread, which answers forwarded packets; the steer
 *            classifier compiled once here, as WorkerPool does.
 *   --control: also two single-threaded sluices at once, nothing shared: what 2 threads reach here.
 * Each side feeds batches of 64 for the same wall time; pps = packets decided / wall time. Each worker
 * gets the mix's packets whose address pair hashes to its queue (as --queue-balance splits them).
 * The fake queue is driven as the addon works (FakeQueue.drive: verdicts read from meta, nothing built
 * per packet); --recording-fake uses feed() instead (an object and a payload copy per packet: garbage
 * for V8's GC threads, which then compete with the workers for the 2 cores).
 * On a loaded machine the wall rate depends on how much CPU the threads get; the capacity ratio
 * (packets per CPU-second of each thread, schedstat) does not. Each round also says how much CPU the
 * main thread, the rest of this process (GC, compiler) and other processes used meanwhile.
 * Then the shared table: a 1M-SA table's memory, and lookups per second of 1 and 2 reader threads.
 *   node dist/bench/workers.bench.js [--rounds 5] [--ms 2000] [--mix 6400] [--control] [--recording-fake] [--one-worker [--slices 1]] [--two-vs-control [--slices 4]] [--table-only] [--no-table]
 */
import { Worker } from 'node:worker_threads';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { configSchema, type Config } from '../src/config/schema';
import { Engine } from '../src/engine/engine';
import { ForwardedSource, type OwnerReply } from '../src/engine/forward';
import { Interfaces } from '../src/io/interfaces';
import { NatStage } from '../src/nat/stage';
import { SaKind, SaTable } from '../src/nat/table';
import { SharedSaView } from '../src/nat/shared';
import type { FromWorker } from '../src/cli/worker-thread';
import { compileImages } from '../src/cli/pipeline';
import { populateNat, steerRules, PUB } from './workers-mix';
import { machineBusyMs, processThreadsCpuMs, threadCpuMs, type DriverInit, type DriverResult } from './workers-driver';
import { numArg } from './args';

const ROUNDS = numArg('--rounds', 5);
const MS = numArg('--ms', 2000);
/** Control: the fake queue's recording feed() (an object per verdict, a copy per rewritten packet), as before. */
const RECORDING = process.argv.includes('--recording-fake');
/** Also run 2 single-threaded sluices at once, nothing shared: what 2 threads can reach here. */
const CONTROL = process.argv.includes('--control');
/**
 * Packets in each thread's mix (cycled). The default 6,400 is ~4.7 MB of packet bytes per thread that
 * the fake copies into the slab, as packets arriving from the kernel would be: two threads then share
 * the last-level cache. A small mix (--mix 640) shows what the threads reach when they do not.
 */
const MIX = numArg('--mix', 6400);
const quantile = (xs: number[], q: number): number => { const a = [...xs].sort((x, y) => x - y); return a[Math.min(a.length - 1, Math.floor(q * a.length))]!; };
const median = (xs: number[]): number => { const a = [...xs].sort((x, y) => x - y); return a.length % 2 ? a[a.length >> 1]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2; };

function config(workers: number): Config {
  return configSchema.parse({
    workers,
    queues: [{ num: 5, batch: 64, fail_open: false }],
    steer: { rules: steerRules(100) },
    nat: { public: [PUB], wan_interface: 'wan0', servers: ['198.51.100.0/24'], queue: 5, journal: { path: null } },
  });
}

interface Driver {
  worker: Worker;
  /** Starts one timed run (init.ms) and resolves with its result. */
  run(): Promise<DriverResult>;
  warm: Promise<void>;
}

/**
 * CPU of the process's threads other than the deciding ones over a timed run, ms: the main thread
 * (the NAT owner with workers) and the rest (V8's garbage-collector and compiler threads, libuv).
 * On 2 cores, whatever these use is taken from the 2 workers.
 */
interface OtherCpu { mainMs: number; otherMs: number; /** CPU other processes used meanwhile. */ outsideMs: number }
interface CpuMark { threads: Map<number, number>; busy: number }
const cpuMark = (): CpuMark => ({ threads: processThreadsCpuMs(), busy: machineBusyMs() });
function otherCpu(before: CpuMark, after: CpuMark, deciding: number[]): OtherCpu {
  let mainMs = 0, otherMs = 0, ours = 0;
  for (const [tid, ms] of after.threads) {
    const d = ms - (before.threads.get(tid) ?? 0);
    ours += d;
    if (deciding.includes(tid)) continue;
    if (tid === process.pid) mainMs += d; else otherMs += d;
  }
  return { mainMs, otherMs, outsideMs: Math.max(0, after.busy - before.busy - ours) };
}

function driver(init: DriverInit, onFwd?: (m: FromWorker) => void): Driver {
  const worker = new Worker(join(__dirname, 'workers-driver.js'), { workerData: { benchDriver: true, init } });
  let warmed!: () => void, warmFailed!: (e: unknown) => void;
  const warm = new Promise<void>((r, j) => { warmed = r; warmFailed = j; });
  let waiting: { resolve: (r: DriverResult) => void; reject: (e: unknown) => void } | null = null;
  let failed: unknown = null;
  worker.on('message', (m: FromWorker | { t: 'warm' } | { t: 'result'; result: DriverResult }) => {
    if (m.t === 'warm') warmed();
    else if (m.t === 'result') { const w = waiting; waiting = null; w?.resolve(m.result); }
    else onFwd?.(m);
  });
  worker.on('error', (e) => { failed = e; warmFailed(e); waiting?.reject(e); waiting = null; });
  worker.on('exit', (code) => { if (!failed) { failed = new Error(`bench driver exited (${code})`); warmFailed(failed); waiting?.reject(failed); waiting = null; } });
  const run = (): Promise<DriverResult> => new Promise<DriverResult>((resolve, reject) => {
    if (failed) { reject(failed); return; }
    waiting = { resolve, reject };
    worker.postMessage('go');
  });
  return { worker, run, warm };
}

/**
 * n single-threaded sluices, each in its own thread with private tables (n = 1: the baseline). With
 * n = 2 (--control) each gets the flows hashing to it: two processes' worth of work with nothing
 * shared, the most two threads can give on this machine (cores, caches, clock under load).
 * startSingles: their drivers, warmed up (each run() is one timed run); close() ends them.
 */
async function startSingles(seed: number, n: number): Promise<{ ds: Driver[]; close: () => Promise<void> }> {
  const ds = Array.from({ length: n }, (_, index) =>
    driver({ mode: 'single', index, cfg: config(1), nat: null, ms: MS, batch: 64, seed, of: n, recording: RECORDING, mixPackets: MIX }));
  await Promise.all(ds.map((d) => d.warm));
  return { ds, close: async () => { for (const d of ds) await d.worker.terminate(); } };
}

async function single(seed: number, n = 1): Promise<{ pps: number; rs: DriverResult[]; r: DriverResult; other: OtherCpu }> {
  const { ds, close } = await startSingles(seed, n);
  const t0 = cpuMark();
  const rs = await Promise.all(ds.map((d) => d.run()));
  const other = otherCpu(t0, cpuMark(), rs.map((r) => r.tid));
  await close();
  const ms = Math.max(...rs.map((r) => r.ms));
  return { pps: rs.reduce((k, r) => k + r.packets, 0) / (ms / 1000), rs, r: rs[0]!, other };
}

/** n worker threads' drivers over an owner NAT in this thread, warmed up; close() ends them and the owner. */
async function startWorkers(seed: number, n: number): Promise<{ ds: Driver[]; answered: () => number; close: () => Promise<void> }> {
  const cfg = config(2); // queues 5 and 6 (with n = 1, only worker 0 runs, on queue 5)
  const owner = new Engine({ held: { max: 4096, timeoutMs: 5000, defaultVerdict: 'accept' }, interfaces: Interfaces.fromList([]) });
  const nat = new NatStage(cfg.nat!, { shared: true });
  owner.setPipeline([nat]);
  populateNat(nat.state);
  const images = await compileImages(cfg); // as WorkerPool does: the steer classifier compiled once, here
  let answered = 0;
  const ds: Driver[] = [];
  for (let index = 0; index < n; index++) {
    let src!: ForwardedSource;
    const d = driver({ mode: 'worker', index, cfg, nat: nat.state.sharedMemory(), ms: MS, batch: 64, seed, of: n, recording: RECORDING, images, mixPackets: MIX },
      (m) => { if (m.t === 'fwd') for (const p of m.ps) src.receive(p); });
    src = new ForwardedSource(owner, (r: OwnerReply) => { answered++; d.worker.postMessage({ t: 'replies', rs: [r] }); });
    src.addQueue(5 + index, { defaultVerdict: 'accept', onInvalid: 'drop' });
    ds.push(d);
  }
  await Promise.all(ds.map((d) => d.warm));
  return { ds, answered: () => answered, close: async () => { for (const d of ds) await d.worker.terminate(); await owner.close(); } };
}

async function workers(seed: number, n = 2): Promise<{ pps: number; rs: DriverResult[]; ownerAnswered: number; ownerCpuMs: number; other: OtherCpu }> {
  const { ds, answered, close } = await startWorkers(seed, n);
  const o0 = threadCpuMs();
  const t0 = cpuMark();
  const rs = await Promise.all(ds.map((d) => d.run()));
  const other = otherCpu(t0, cpuMark(), rs.map((r) => r.tid));
  const ownerCpuMs = threadCpuMs() - o0;
  await close();
  const ms = Math.max(...rs.map((r) => r.ms));
  return { pps: rs.reduce((k, r) => k + r.packets, 0) / (ms / 1000), rs, ownerAnswered: answered(), ownerCpuMs, other };
}

async function throughput(): Promise<void> {
  console.log(`# workers: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; ${ROUNDS} paired rounds of ${MS} ms per side; ${MIX} packets in each thread's mix`);
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  const controlRatios: number[] = [], controlCap: number[] = [];
  // CPU per packet of each thread: what a thread costs with a core to itself, whatever else runs.
  const nsPer = (r: DriverResult): number => (r.threadCpuMs * 1e6) / r.packets;
  const pct = (cpuMs: number, ms: number): string => `${((cpuMs / ms) * 100).toFixed(0)}%`;
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which side runs first, so a drift in machine load does not favour one.
    const first = round % 2 === 0;
    const a = first ? await single(1000 + round) : null;
    const w = await workers(1000 + round);
    const s = a ?? await single(1000 + round);
    ratios.push(w.pps / s.pps);
    // Capacity with a core per thread: packets per CPU-second of each worker, summed, against the single thread's.
    const cap = w.rs.reduce((n, r) => n + r.packets / r.threadCpuMs, 0) / (s.r.packets / s.r.threadCpuMs);
    cpuRatios.push(cap);
    let control = '';
    if (CONTROL) {
      const c = await single(1000 + round, 2);
      const cc = c.rs.reduce((n, r) => n + r.packets / r.threadCpuMs, 0) / (s.r.packets / s.r.threadCpuMs);
      controlRatios.push(c.pps / s.pps); controlCap.push(cc);
      control = ` | control, 2 private singles: ${(c.pps / 1e3).toFixed(0)} kpps, ${c.rs.map((r) => `${nsPer(r).toFixed(0)} ns/pkt at ${pct(r.threadCpuMs, r.ms)} (waited ${pct(r.threadWaitMs, r.ms)})`).join(' and ')}, wall ratio ${(c.pps / s.pps).toFixed(2)}, capacity ratio ${cc.toFixed(2)}`;
    }
    console.log(`round ${round + 1}: single ${(s.pps / 1e3).toFixed(0)} kpps, ${nsPer(s.r).toFixed(0)} ns CPU/pkt, ${pct(s.r.threadCpuMs, s.r.ms)} of a core, waited ${pct(s.r.threadWaitMs, s.r.ms)} (${s.r.dropped} dropped) | ` +
      `workers:2 ${(w.pps / 1e3).toFixed(0)} kpps = ${w.rs.map((r) => (r.packets / r.ms).toFixed(0)).join(' + ')} kpps, ${w.rs.map((r) => `${nsPer(r).toFixed(0)} ns/pkt at ${pct(r.threadCpuMs, r.ms)} (waited ${pct(r.threadWaitMs, r.ms)})`).join(' and ')}; ` +
      `forwarded ${w.rs.map((r) => r.forwarded).join('+')} | other processes ${pct(s.other.outsideMs, s.r.ms)} / ${pct(w.other.outsideMs, w.rs[0]!.ms)} of 200% | other threads, % of a core: single: main ${pct(s.other.mainMs, s.r.ms)}, rest ${pct(s.other.otherMs, s.r.ms)}; ` +
      `workers: main (owner) ${pct(w.other.mainMs, w.rs[0]!.ms)}, rest ${pct(w.other.otherMs, w.rs[0]!.ms)} | wall ratio ${(w.pps / s.pps).toFixed(2)}, capacity ratio ${cap.toFixed(2)}${control}`);
  }
  console.log(`workers:2 / single, median of ${ROUNDS} paired rounds: wall ${median(ratios).toFixed(2)}x (rounds: ${ratios.map((r) => r.toFixed(2)).join(' ')}); ` +
    `capacity (packets per CPU-second, summed over the workers) ${median(cpuRatios).toFixed(2)}x (rounds: ${cpuRatios.map((r) => r.toFixed(2)).join(' ')})`);
  if (CONTROL) console.log(`control, 2 private singles / single: wall ${median(controlRatios).toFixed(2)}x (rounds: ${controlRatios.map((r) => r.toFixed(2)).join(' ')}); capacity ${median(controlCap).toFixed(2)}x`);
}

/**
 * A 1M-SA shared table: memory, and lookups (find + the fields the NAT reads) per CPU-second: by
 * the owner thread through SaTable.find (today's path), then by 1 and by 2 reader threads at once
 * through SharedSaView (seqlock + key check), random keys over the whole table.
 */
async function table(): Promise<void> {
  const rss0 = process.memoryUsage().rss;
  const N = 1 << 20;
  const t = new SaTable(N, 1024, { shared: true });
  for (let i = 0; i < N; i++) t.add(SaKind.ESP_IN, 0, (0xc6336400 + (i & 255)) >>> 0, 0x0a010000 + i, (0xc0000000 + i) >>> 0, 0, 0, 0, 0);
  const rss1 = process.memoryUsage().rss;
  console.log(`# shared table: ${N} SAs; table arrays ${(t.byteLength / 1048576).toFixed(0)} MiB; RSS ${(rss0 / 1048576).toFixed(0)} → ${(rss1 / 1048576).toFixed(0)} MiB after filling it (+${((rss1 - rss0) / 1048576).toFixed(0)} MiB)`);
  // In this thread: SaTable.find + host (a single-threaded sluice's lookup), then SharedSaView.lookup
  // (seqlock, key check, the fields the NAT reads) over the same table: what the checks cost.
  const view = new SharedSaView(t.sharedArrays());
  const local = (name: string, f: (k: number) => boolean): void => {
    let x = 7, ok = 0, n = 0;
    const c0 = threadCpuMs(), t0 = performance.now();
    while (performance.now() - t0 < 1500) {
      for (let i = 0; i < 65536; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        if (f(x & (N - 1))) ok++;
      }
      n += 65536;
    }
    const cpu = threadCpuMs() - c0;
    if (ok !== n) throw new Error(`${name}: lookups missed`);
    console.log(`  this thread, ${name}: ${(n / cpu / 1e3).toFixed(2)} M lookups per CPU-second (${(cpu / (performance.now() - t0) * 100).toFixed(0)}% of a core)`);
  };
  local('SaTable.find', (k) => { const id = t.find(SaKind.ESP_IN, 0, (0xc6336400 + (k & 255)) >>> 0, (0xc0000000 + k) >>> 0, 0); return id >= 0 && t.host[id] === 0x0a010000 + k; });
  local('SharedSaView.lookup', (k) => view.lookup(SaKind.ESP_IN, 0, (0xc6336400 + (k & 255)) >>> 0, (0xc0000000 + k) >>> 0, 0) >= 0 && view.host === 0x0a010000 + k);
  const readers = async (n: number): Promise<number[]> => {
    const ws = Array.from({ length: n }, (_, k) => new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const { readFileSync } = require('node:fs');
      const { SharedSaView } = require(workerData.shared);
      const cpuMs = () => { const s = readFileSync('/proc/thread-self/stat', 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
      const v = new SharedSaView(workerData.sas);
      let x = workerData.seed, hits = 0, n = 0;
      const c0 = cpuMs(), t0 = performance.now();
      while (performance.now() - t0 < 1500) {
        for (let i = 0; i < 65536; i++) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0;
          const k = x & ${N - 1};
          if (v.lookup(1, 0, (0xc6336400 + (k & 255)) >>> 0, (0xc0000000 + k) >>> 0, 0) >= 0 && v.host === 0x0a010000 + k) hits++;
        }
        n += 65536;
      }
      const cpu = cpuMs() - c0;
      parentPort.postMessage({ rate: n / cpu * 1000, share: cpu / (performance.now() - t0), ok: hits === n, rss: process.memoryUsage().rss });
    `, { eval: true, workerData: { shared: join(__dirname, '../src/nat/shared.js'), sas: t.sharedArrays(), seed: 7 + k } }));
    const rs = await Promise.all(ws.map((w) => new Promise<{ rate: number; share: number; ok: boolean; rss: number }>((r) => w.once('message', r))));
    if (!rs.every((r) => r.ok)) throw new Error('a reader missed a record');
    console.log(`  ${n} reader thread(s), SharedSaView.lookup: ${rs.map((r) => `${(r.rate / 1e6).toFixed(2)} M lookups per CPU-second (${(r.share * 100).toFixed(0)}% of a core)`).join(', ')}; process RSS ${(Math.max(...rs.map((r) => r.rss)) / 1048576).toFixed(0)} MiB`);
    await Promise.all(ws.map((w) => w.terminate()));
    return rs.map((r) => r.rate);
  };
  const one = await readers(1);
  const two = await readers(2);
  console.log(`  per reader, 2 at once / 1 alone: ${(two.reduce((a, b) => a + b, 0) / 2 / one[0]!).toFixed(2)}`);
}

/**
 * The worker's NAT path alone: one worker thread (NAT over the shared table, owner in this thread)
 * against one single-threaded sluice, same packets: what the shared-table path costs per packet
 * without a second thread (no cache lines shared between workers). Each round starts both and runs
 * them in turn, --slices times each (--ms per run): consecutive runs make a pair, so a change in
 * machine load between rounds falls on both sides of a pair alike (median over all pairs).
 */
async function oneWorker(): Promise<void> {
  const SLICES = numArg('--slices', 1);
  const ratios: number[] = [];
  const ns = (r: DriverResult): number => (r.threadCpuMs * 1e6) / r.packets;
  for (let round = 0; round < ROUNDS; round++) {
    const s = await startSingles(2000 + round, 1);
    const w = await startWorkers(2000 + round, 1);
    const pairs: string[] = [];
    for (let k = 0; k < SLICES; k++) {
      // Alternate which side runs first within the round.
      const [a, b] = k % 2 === 0 ? [s.ds[0]!, w.ds[0]!] : [w.ds[0]!, s.ds[0]!];
      const ra = await a.run();
      const rb = await b.run();
      const [rs, rw] = k % 2 === 0 ? [ra, rb] : [rb, ra];
      ratios.push(ns(rw) / ns(rs));
      pairs.push(`${ns(rs).toFixed(0)}/${ns(rw).toFixed(0)}${rw.forwarded ? ` (forwarded ${rw.forwarded})` : ''}`);
    }
    await s.close();
    await w.close();
    const mine = ratios.slice(-SLICES);
    console.log(`round ${round + 1}: single/1 worker ns CPU/pkt ${pairs.join(' ')} | ratio median ${median(mine).toFixed(3)} (load average ${loadavg()[0]!.toFixed(2)})`);
  }
  console.log(`1 worker / single, CPU per packet, median of ${ratios.length} pairs: ${median(ratios).toFixed(3)} (quartiles ${quantile(ratios, 0.25).toFixed(3)}..${quantile(ratios, 0.75).toFixed(3)})`);
}

/**
 * What sharing costs two threads at once: workers: 2 (shared NAT table) against the control (two
 * single-threaded sluices, nothing shared), CPU per packet of each thread, --slices paired runs per
 * round (the two sides in turn, each side's two threads at once).
 */
async function twoVsControl(): Promise<void> {
  const SLICES = numArg('--slices', 4);
  const ratios: number[] = [];
  const ns = (rs: DriverResult[]): number => rs.reduce((n, r) => n + r.threadCpuMs, 0) * 1e6 / rs.reduce((n, r) => n + r.packets, 0);
  for (let round = 0; round < ROUNDS; round++) {
    const c = await startSingles(3000 + round, 2);
    const w = await startWorkers(3000 + round, 2);
    const pairs: string[] = [];
    for (let k = 0; k < SLICES; k++) {
      const both = (ds: Driver[]): Promise<DriverResult[]> => Promise.all(ds.map((d) => d.run()));
      const [ra, rb] = k % 2 === 0 ? [await both(c.ds), await both(w.ds)] : [await both(w.ds), await both(c.ds)];
      const [rc, rw] = k % 2 === 0 ? [ra, rb] : [rb, ra];
      ratios.push(ns(rw) / ns(rc));
      pairs.push(`${ns(rc).toFixed(0)}/${ns(rw).toFixed(0)}`);
    }
    await c.close();
    await w.close();
    console.log(`round ${round + 1}: control/workers:2 ns CPU/pkt ${pairs.join(' ')} | ratio median ${median(ratios.slice(-SLICES)).toFixed(3)} (load average ${loadavg()[0]!.toFixed(2)})`);
  }
  console.log(`workers:2 / control, CPU per packet, median of ${ratios.length} pairs: ${median(ratios).toFixed(3)} (quartiles ${quantile(ratios, 0.25).toFixed(3)}..${quantile(ratios, 0.75).toFixed(3)})`);
}

async function main(): Promise<void> {
  if (process.argv.includes('--one-worker')) { await oneWorker(); return; }
  if (process.argv.includes('--two-vs-control')) { await twoVsControl(); return; }
  if (!process.argv.includes('--table-only')) await throughput();
  if (!process.argv.includes('--no-table')) await table();
}

void main().catch((e: unknown) => { console.error(e); process.exit(1); });
