/**
 * One packet-deciding thread of bench/workers.bench.ts, on the fake binding: feeds batches of the
 * bench's mix to a queue for a fixed wall time and reports how many packets it decided.
 *   mode 'single': today's one-thread sluice (Engine + the whole pipeline, NAT tables private).
 *   mode 'worker': a WorkerCore as `workers: N` runs it (src/cli/worker-thread.ts), NAT over the
 *                  owner's shared table, forwarding to the main thread over postMessage.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { readdirSync, readFileSync } from 'node:fs';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import type { Config } from '../src/config/schema';
import { Engine } from '../src/engine/engine';
import { FakeBinding } from '../src/io/fake';
import { Interfaces } from '../src/io/interfaces';
import { NfQueue } from '../src/io/nfqueue';
import { M_VERDICT, META_STRIDE, V_ACCEPT, V_DROP, V_HOLD } from '../src/io/batch-layout';
import type { NatStage } from '../src/nat/stage';
import type { SharedNatMemory } from '../src/nat/shared';
import { createLogger } from '../src/obs/log';
import { buildStages, type CompiledImages } from '../src/cli/pipeline';
import { WorkerCore, type FromWorker, type ToWorker } from '../src/cli/worker-thread';
import { benchMix, flowQueue, populateNat, type MixPacket } from './workers-mix';

export interface DriverInit {
  mode: 'single' | 'worker';
  index: number;
  cfg: Config;
  nat: SharedNatMemory | null;
  ms: number;
  batch: number;
  seed: number;
  /** Packets in this thread's mix, cycled (default 6,400: ~4.7 MB of packet bytes; a smaller mix stays in cache). */
  mixPackets?: number;
  /** Worker threads in this run: worker `index` gets the packets whose flow hashes to it, as --queue-balance does. */
  of: number;
  /**
   * A control: feed through FakeQueue.feed(), which builds a verdict object per packet and copies
   * every rewritten payload (what the bench did before: garbage a deployment never makes).
   */
  recording: boolean;
  /** Workers: the steer classifier compiled once by the main thread, as WorkerPool hands it over. */
  images?: CompiledImages;
}

export interface DriverResult {
  packets: number; ms: number;
  /** CPU time of this thread alone, and time it was runnable but waited for a CPU (schedstat). */
  threadCpuMs: number; threadWaitMs: number;
  forwarded: number; accepted: number; dropped: number;
  /** This thread's kernel id (the bench tells the deciding threads from the rest of the process). */
  tid: number;
}

/**
 * Time a thread ran on a CPU and time it was runnable but waited for one, ms, from schedstat
 * (nanoseconds; Node 20 has no per-thread cpuUsage, and /proc/.../stat counts 10 ms ticks).
 */
function sched(path: string): { runMs: number; waitMs: number } {
  const [run, wait] = readFileSync(path, 'utf8').split(' ');
  return { runMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
}

/** CPU time of the calling thread, ms. */
export function threadCpuMs(): number {
  return sched('/proc/thread-self/schedstat').runMs;
}

/** Time the calling thread waited for a CPU while runnable, ms (other threads had the cores). */
export function threadWaitMs(): number {
  return sched('/proc/thread-self/schedstat').waitMs;
}

/** The calling thread's kernel id (first field of /proc/thread-self/stat). */
export function threadId(): number {
  return Number(readFileSync('/proc/thread-self/stat', 'utf8').split(' ', 1)[0]);
}

/** CPU time of every thread of this process (tid → ms): who besides the deciding threads uses CPU. */
export function processThreadsCpuMs(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      out.set(Number(tid), sched(`/proc/self/task/${tid}/schedstat`).runMs);
    } catch { /* the thread ended */ }
  }
  return out;
}

/** CPU time all processes used so far, ms (/proc/stat: user, nice, system, irq, softirq, steal). */
export function machineBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  return ((f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) * 1000) / TICKS;
}
const TICKS = 100; // USER_HZ: /proc/stat counts in 1/100 s

async function run(init: DriverInit): Promise<void> {
  const port = parentPort!;
  const fake = new FakeBinding();
  const log = createLogger('silent');
  const interfaces = Interfaces.fromList([]);
  let engine: Engine;
  let queue: number;
  let core: WorkerCore | null = null;
  if (init.mode === 'worker') {
    core = new WorkerCore({ index: init.index, cfg: init.cfg, nat: init.nat, stateDir: '/nonexistent', images: init.images }, fake, log,
      (m: FromWorker) => port.postMessage(m), interfaces);
    port.on('message', (m: ToWorker) => { if (m.t === 'replies') core!.replies(m.rs); });
    [queue] = core.openQueues() as [number];
    engine = core.engine;
  } else {
    const cfg = init.cfg;
    engine = new Engine({ held: { max: cfg.held.max, timeoutMs: cfg.held.timeout_ms, defaultVerdict: cfg.held.default_verdict }, interfaces });
    const stages = buildStages(cfg, { log, stateDir: '/nonexistent' });
    engine.setPipeline(stages.map((s) => s.stage));
    populateNat((stages.find((s) => s.key === 'nat')!.stage as NatStage).state);
    const q = cfg.queues[0]!;
    queue = q.num;
    let source = -1;
    const nq = NfQueue.open({ queue, batchSize: init.batch, defaultVerdict: V_ACCEPT, invalidVerdict: V_DROP }, (b) => engine.handleBatch(source, b), fake);
    source = engine.addSource(nq, queue, { defaultVerdict: q.default_verdict, onInvalid: q.on_invalid });
  }
  const fq = fake.queue(queue);
  const m = init.mixPackets ?? 6400;
  const mix: MixPacket[] = init.of > 1 ? benchMix(init.seed, m * init.of * 2).filter((p) => flowQueue(p.bytes, init.of) === init.index).slice(0, m) : benchMix(init.seed, m);
  const batches: { bytes: Uint8Array; hook: number; indev: number }[][] = [];
  for (let i = 0; i + init.batch <= mix.length; i += init.batch) batches.push(mix.slice(i, i + init.batch).map((p) => ({ bytes: p.bytes, hook: p.hook, indev: p.indev })));
  // Warm-up (JIT), then the timed run; the event loop turns every few ms for the owner's answers.
  for (let i = 0; i < 200; i++) fq.drive(batches[i % batches.length]!);
  const meta = fq.meta;
  await yieldLoop();
  fq.sent.length = 0;
  port.postMessage({ t: 'warm' });
  let b = 0, forwardedBefore = 0;
  /** One timed run of init.ms. */
  const timed = async (): Promise<DriverResult> => {
    const c0 = threadCpuMs();
    const w0 = threadWaitMs();
    const t0 = performance.now();
    let packets = 0, accepted = 0, dropped = 0;
    for (;;) {
      const t = performance.now();
      if (t - t0 >= init.ms) break;
      for (let k = 0; k < 50; k++) {
        // As the addon: the verdicts are read out of meta, nothing is built per packet.
        const batch = batches[b]!;
        if (init.recording) fq.feed(batch); else fq.drive(batch);
        const n = batch.length;
        packets += n;
        for (let i = 0; i < n; i++) {
          const v = meta[i * META_STRIDE + M_VERDICT];
          if (v === V_ACCEPT) accepted++; else if (v !== V_HOLD) dropped++;
        }
        if (++b === batches.length) b = 0;
      }
      fq.sent.length = 0;
      if ((packets & 0x3fff) < 50 * init.batch) await yieldLoop();
    }
    const ms = performance.now() - t0;
    const cpu = threadCpuMs() - c0;
    const waited = threadWaitMs() - w0;
    const natStats = core ? (core.stats().stages.nat?.state as { worker?: { forwarded: number } } | undefined) : undefined;
    const forwarded = (natStats?.worker?.forwarded ?? 0) - forwardedBefore;
    forwardedBefore += forwarded;
    return { packets, ms, threadCpuMs: cpu, threadWaitMs: waited, forwarded, accepted, dropped, tid: threadId() };
  };
  // Each 'go' runs one timed run and reports it (the bench may ask for several, in turn with another driver's).
  port.on('message', (m: unknown) => {
    if (m === 'go') void timed().then((result) => port.postMessage({ t: 'result', result }));
  });
}

if (parentPort && (workerData as { benchDriver?: boolean } | null)?.benchDriver) void run((workerData as { init: DriverInit }).init);
