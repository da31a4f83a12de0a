/**
 * Steal attribution for the stall bench: runs bench/steal-sampler.ts (the hiccup control and the
 * per-CPU steal sampler) beside the bench and says, for each gap over 5 ms, how much hypervisor
 * steal the CPU(s) the thread was on accounted in the gap's window.
 * The kernel accounts steal when the vCPU gets back (leaving idle) or at the next tick (4 ms at
 * HZ=250), and /proc/stat prints it in 10 ms ticks: a gap's window is therefore its span plus
 * 5.5 ms after it, and a count of ticks is coarse per gap (a 4 ms steal moves it with a chance of
 * 0.4) but unbiased in a sum: over many gaps, ticks × 10 ms estimates the steal in them.
 * The fine figure comes from steal-clock.ts: per-CPU clock less clock_task from debugfs (ns), read
 * every 20 ms at normal priority (a read costs ~1.4 ms); a gap's fine steal is the change between
 * the last read before it and the first read after it. No finer source on this kernel: no
 * /proc/schedstat (CONFIG_SCHEDSTATS off), no kprobe events (account_steal_time cannot be traced);
 * `perf kvm` is the host's tool.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { cpus as osCpus } from 'node:os';
import type { LongGap } from './gaps';

/** Steal ticks (10 ms) a CPU accounted between two samples (CLOCK_MONOTONIC ms). */
interface StealStep { from: number; to: number; cpu: number; ticks: number }
/** The control's own gaps over 5 ms, as the sampler reports them. */
export interface ControlGap { endMono: number; ms: number; wait: number; cpuBefore: number; cpu: number }
/** The control's gaps over a window (between two marks). */
export interface ControlWindow { count: number; over5: number; max: number; p999: number; long: ControlGap[] }
/** A gap over 5 ms as the summary counts it. */
interface Seen { kind: string; ms: number; stealMs: number; fineMs: number }
/** One CPU's steal so far (clock less clock_task, ms) as read between two instants. */
interface ClockRead { before: number; after: number; steal: number }

const TICK_MS = 10;
/** After a gap, how long its steal may take to be accounted and sampled (a tick, plus a sample). */
const AFTER_MS = 5.5;
/** A batch interval with nothing in the way (the 1 ms timer, plus the batch): a gap's excess is over this. */
const NORMAL_MS = 1.1;

export class StealProbe {
  private readonly child: ChildProcess;
  private readonly fineChild: ChildProcess;
  private readonly fine = new Map<number, ClockRead[]>();
  private fineRest = '';
  private readonly steps: StealStep[] = [];
  private readonly controlGaps: ControlGap[] = [];
  private readonly waiting: ((w: ControlWindow) => void)[] = [];
  private readonly seen: Seen[] = [];
  private readonly t0 = Number(process.hrtime.bigint()) / 1e6;
  private windowStart = this.t0;
  private rest = '';

  /** Starts the sampler, its main thread at SCHED_FIFO `fifo` (0: normal scheduling). */
  constructor(fifo: number) {
    // chrt -o: its V8 threads at normal priority whatever the bench's own scheduling (only its main
    // thread is raised; a compile job at the bench's priority would hold a CPU from the bench).
    this.child = spawn('chrt', ['-o', '0', process.execPath, join(__dirname, 'steal-sampler.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
    if (fifo > 0) execFileSync('chrt', ['-f', '-p', String(fifo), String(this.child.pid)]);
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => this.lines(d));
    // debugfs in a mount namespace of its own: nothing mounted on the machine for everyone.
    const script = `mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug; exec chrt -o 0 "$0" "$1"`;
    this.fineChild = spawn('unshare', ['-m', 'sh', '-c', script, process.execPath, join(__dirname, 'steal-clock.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.fineChild.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const parts = (this.fineRest + d).split('\n');
      this.fineRest = parts.pop()!;
      for (const line of parts) {
        const n = line.split(' ').slice(1).map(Number);
        let reads = this.fine.get(n[2]!);
        if (!reads) this.fine.set(n[2]!, reads = []);
        reads.push({ before: n[0]!, after: n[1]!, steal: n[3]! });
      }
    });
  }

  /**
   * Steal (ms, to the ns) on the given CPUs between the last debugfs read before `from` and the
   * first after `to` (NaN when there is none), and how long that span was.
   */
  fineStealOn(cpus: number[], from: number, to: number): { ms: number; span: number } {
    let ms = 0, span = 0;
    for (const c of cpus) {
      const reads = this.fine.get(c) ?? [];
      let a: ClockRead | undefined, b: ClockRead | undefined;
      for (const r of reads) {
        if (r.after <= from) a = r;
        else if (r.before >= to && !b) b = r;
      }
      if (!a || !b) return { ms: NaN, span: NaN };
      ms += b.steal - a.steal;
      span = Math.max(span, b.before - a.after);
    }
    return { ms, span };
  }

  private lines(d: string): void {
    const all = this.rest + d;
    const parts = all.split('\n');
    this.rest = parts.pop()!;
    for (const line of parts) {
      const f = line.split(' ');
      const n = f.slice(1).map(Number);
      if (f[0] === 'S') this.steps.push({ from: n[0]!, to: n[1]!, cpu: n[2]!, ticks: n[3]! });
      else if (f[0] === 'G') this.controlGaps.push({ endMono: n[0]!, ms: n[1]!, wait: n[2]!, cpuBefore: n[3]!, cpu: n[4]! });
      else if (f[0] === 'W') {
        const start = this.windowStart;
        this.windowStart = Number(process.hrtime.bigint()) / 1e6;
        const long = this.controlGaps.filter((g) => g.endMono > start && g.endMono <= this.windowStart);
        this.waiting.shift()?.({ count: n[0]!, over5: n[1]!, max: n[2]!, p999: n[3]!, long });
      }
    }
  }

  /** Ends the control's current window and starts the next; resolves with the ended one. */
  mark(): Promise<ControlWindow> {
    return new Promise((resolve) => { this.waiting.push(resolve); this.child.stdin!.write('\n'); });
  }

  /** Steal (ms, in 10 ms ticks) accounted on the given CPUs in [from, to] (CLOCK_MONOTONIC ms). */
  stealOn(cpus: number[], from: number, to: number): number {
    let ticks = 0;
    for (const s of this.steps) if (cpus.includes(s.cpu) && s.to > from && s.from < to) ticks += s.ticks;
    return ticks * TICK_MS;
  }

  /** The steal seen in a gap's window on the CPU(s) it was on, and notes it for the summary. */
  attribute(kind: string, g: { ms: number; endMono: number; cpuBefore: number; cpu: number }): string {
    const cpus = g.cpuBefore === g.cpu ? [g.cpu] : [g.cpuBefore, g.cpu];
    const stealMs = this.stealOn(cpus, g.endMono - g.ms, g.endMono + AFTER_MS);
    // The fine clock is brought up to date when the thread wakes at the gap's end (+ 1 ms of slack).
    const fine = this.fineStealOn(cpus, g.endMono - g.ms, g.endMono + 1);
    this.seen.push({ kind, ms: g.ms, stealMs, fineMs: fine.ms });
    return `cpu ${cpus.join('→')}, steal ${stealMs} ms in ticks, ${fine.ms.toFixed(2)} ms fine (in ${fine.span.toFixed(0)} ms around it)`;
  }

  /** Formats one bench gap over 5 ms: "at: gap/run-queue wait, cpu, steal in its window". */
  describe(kind: string, g: LongGap): string {
    return `${g.at}: ${g.ms.toFixed(2)}/${g.wait.toFixed(2)} ${this.attribute(kind, g)}`;
  }

  /** The control's gaps over 5 ms in a window, each with its steal. */
  describeControl(w: ControlWindow): string {
    return w.long.map((g) => `${g.ms.toFixed(2)}/${g.wait.toFixed(2)} ${this.attribute('control', g)}`).join(', ');
  }

  /**
   * The run's account: per kind of gap, how many over 5 ms, how many with steal seen in their
   * window, the steal seen against their excess over a normal interval, and the chance level (the
   * run's steal rate on one CPU over a window as long).
   */
  summary(): string[] {
    const now = Number(process.hrtime.bigint()) / 1e6;
    const secs = (now - this.t0) / 1000;
    const cpus = new Set(this.steps.map((s) => s.cpu));
    const totalMs = this.steps.reduce((a, s) => a + s.ticks * TICK_MS, 0);
    const perCpuRate = totalMs / osCpus().length / (now - this.t0); // steal ms per ms, per CPU
    const out = [`steal over the run (${secs.toFixed(1)} s): ${totalMs} ms in ${this.steps.length} sample steps (${[...cpus].sort().map((c) => `cpu${c} ${this.steps.filter((s) => s.cpu === c).reduce((a, s) => a + s.ticks * TICK_MS, 0)} ms`).join(', ')})`];
    let fineTotal = 0;
    for (const reads of this.fine.values()) if (reads.length > 1) fineTotal += reads[reads.length - 1]!.steal - reads[0]!.steal;
    const fineRate = fineTotal / osCpus().length / (now - this.t0);
    out.push(`fine steal (debugfs clock less clock_task) over the run: ${fineTotal.toFixed(1)} ms, all CPUs`);
    for (const kind of ['during', 'baseline', 'control']) {
      const gs = this.seen.filter((s) => s.kind === kind);
      if (gs.length === 0) { out.push(`${kind}: no gaps over 5 ms`); continue; }
      const withSteal = gs.filter((s) => s.stealMs > 0).length;
      const excess = gs.reduce((a, s) => a + s.ms - NORMAL_MS, 0);
      const steal = gs.reduce((a, s) => a + s.stealMs, 0);
      const windowMs = gs.reduce((a, s) => a + s.ms + AFTER_MS, 0);
      const fine = gs.reduce((a, s) => a + (Number.isNaN(s.fineMs) ? 0 : s.fineMs), 0);
      const explained = gs.filter((s) => s.fineMs >= (s.ms - NORMAL_MS) / 2).length;
      const none = gs.filter((s) => s.fineMs < 0.5).length;
      out.push(`${kind}: ${gs.length} gaps over 5 ms (${gs.map((s) => `${s.ms.toFixed(1)}/${s.fineMs.toFixed(1)}`).join(', ')} ms gap/fine steal); `
        + `fine steal ≥ half the excess over ${NORMAL_MS} ms in ${explained}, < 0.5 ms in ${none}; fine steal ${fine.toFixed(1)} ms against ${excess.toFixed(1)} ms of excess `
        + `(chance: ${(fineRate * windowMs).toFixed(2)} ms); in ticks ${steal} ms, ${withSteal} with a tick (chance: ${(perCpuRate * windowMs).toFixed(1)} ms)`);
    }
    return out;
  }

  close(): void { this.child.stdin!.end(); this.fineChild.stdin!.end(); }
}
