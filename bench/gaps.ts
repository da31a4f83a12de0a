/**
 * Batch-gap recorder for the stall benchmarks: a fixed histogram (10 µs buckets up to 1 s), so
 * recording a million gaps allocates nothing (a growing array's copies would show up as gaps).
 * With a ThreadClock, each gap also says how long the main thread was runnable but waiting for a
 * CPU in it (another thread or process had the CPUs: not the process's own work on this thread).
 */
import { closeSync, openSync, readSync } from 'node:fs';

/**
 * The calling thread's run-queue wait from /proc/thread-self/schedstat ("on-CPU ns, run-queue wait
 * ns, timeslices"), read into a preallocated buffer and parsed by hand (no allocation). The wait is
 * exact (accounted when the thread gets a CPU); the on-CPU figure is only brought up to date at
 * scheduler ticks (4 ms at HZ=250), too coarse for a gap, so it is not used.
 */
export class ThreadClock {
  private readonly fd: number;
  private readonly buf = Buffer.alloc(128);
  /** Milliseconds spent waiting in the run queue, as of the last read(). */
  waitMs = 0;

  constructor() { this.fd = openSync('/proc/thread-self/schedstat', 'r'); }

  read(): void {
    const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    let field = 0, v = 0;
    for (let i = 0; i < n; i++) {
      const c = this.buf[i]!;
      if (c >= 48 && c <= 57) { v = v * 10 + (c - 48); continue; }
      if (field === 1) { this.waitMs = v / 1e6; break; }
      field++; v = 0;
    }
  }

  close(): void { closeSync(this.fd); }
}

/**
 * The CPU the calling thread last ran on (/proc/thread-self/stat, field 39), read into a
 * preallocated buffer and parsed by hand (no allocation; ~10 µs a read).
 */
export class ThreadCpu {
  private readonly fd: number;
  private readonly buf = Buffer.alloc(1024);

  constructor() { this.fd = openSync('/proc/thread-self/stat', 'r'); }

  read(): number {
    const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    let i = n - 1;
    while (i > 0 && this.buf[i] !== 41) i--; // the last ')': the command name may hold spaces
    // Field 3 (the state) follows ") "; the processor is field 39.
    let field = 2, v = 0;
    for (i += 1; i < n; i++) {
      const c = this.buf[i]!;
      if (c === 32) { if (field === 39) return v; field++; v = 0; continue; }
      if (c >= 48 && c <= 57) v = v * 10 + (c - 48);
    }
    return -1;
  }

  close(): void { closeSync(this.fd); }
}

/**
 * One gap over 5 ms: when (ms since the start), how long, the thread's run-queue wait in it, the
 * CPU it was on before and after it, and when it ended (CLOCK_MONOTONIC ms; for the steal samples).
 */
export interface LongGap { at: number; ms: number; wait: number; cpuBefore: number; cpu: number; endMono: number }

export class Gaps {
  private readonly hist = new Float64Array(100_001);
  count = 0;
  max = 0;
  /** Longest gap minus the main thread's run-queue wait in it (what is left when the CPU was ours). */
  maxOwn = 0;
  /** Times (ms since start) of gaps over 5 ms, first 10. */
  readonly over5: number[] = [];
  /** The same gaps with their CPU / wait split (when recorded with a ThreadClock), first 10. */
  readonly long: LongGap[] = [];

  /** Gaps over 5 ms, all of them (`long` keeps the first 10). */
  over5Count = 0;

  add(ms: number, at: number, wait = 0, cpuBefore = -1, cpu = -1, endMono = 0): void {
    this.count++;
    if (ms > this.max) this.max = ms;
    if (ms - wait > this.maxOwn) this.maxOwn = ms - wait;
    if (ms > 5) this.over5Count++;
    if (ms > 5 && this.over5.length < 10) {
      this.over5.push(Math.round(at));
      this.long.push({ at: Math.round(at), ms, wait, cpuBefore, cpu, endMono });
    }
    this.hist[Math.min(100_000, Math.floor(ms * 100))]!++;
  }

  quantile(q: number): number {
    const want = Math.ceil(this.count * q);
    let n = 0;
    for (let i = 0; i < this.hist.length; i++) { n += this.hist[i]!; if (n >= want) return (i + 1) / 100; }
    return this.max;
  }
}
