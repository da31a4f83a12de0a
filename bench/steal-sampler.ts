/**
 * The stall bench's platform probe, a process of its own (no sluice code in it): a 1 ms timer loop
 * like the bench's, doing nothing but reading the clock, /proc/stat and its own thread's CPU and
 * run-queue wait. It is two things at once:
 * - the hiccup control: the same gap recorder as the bench's main thread (gaps.ts), so the platform
 *   alone stopping a thread for > 5 ms shows up here as it would in the bench;
 * - the steal sampler: each wake reads every CPU's steal (hypervisor time: the vCPU was runnable on
 *   the host but not running) from /proc/stat, which the kernel accounts in ns but prints in
 *   USER_HZ ticks (10 ms). A 1 kHz sample says when a CPU's count went up, to ~1 ms.
 * Its main thread runs above the bench's (the bench sets SCHED_FIFO), so nothing in the guest at
 * a lower priority delays it; ~30 µs of work a wake (3 % of a CPU).
 * Output, one line per event (CLOCK_MONOTONIC ms; rare, so the strings are no hot-path cost):
 *   S <previous sample> <sample> <cpu> <ticks>   the CPU's steal went up by ticks × 10 ms in between
 *   G <end> <gap ms> <run-queue wait ms> <cpu before> <cpu after>   a gap of its own over 5 ms
 *   W <gaps> <over 5 ms> <longest> <p99.9>      reply to a line on stdin: since the previous one
 */
import { openSync, readSync } from 'node:fs';
import { Gaps, ThreadClock, ThreadCpu } from './gaps';

const MONO = Number(process.hrtime.bigint()) / 1e6 - performance.now();
const MAX_CPUS = 256;
const stat = openSync('/proc/stat', 'r');
const buf = Buffer.alloc(8192);
const steal = new Float64Array(MAX_CPUS).fill(-1);
const clock = new ThreadClock();
const cpu = new ThreadCpu();
let gaps = new Gaps();
let last = performance.now();
let lastCpu = cpu.read();
clock.read();
let wait = clock.waitMs;

/** Reads the per-CPU steal ticks (8th value of each "cpuN" line) and reports the ones that went up. */
function sampleSteal(prev: number, now: number): void {
  const n = readSync(stat, buf, 0, buf.length, 0);
  let i = 0;
  while (i < n) {
    // A line "cpuN v1 v2 ... v10"; the first ("cpu ") is the sum and is skipped; stop after the CPUs.
    if (buf[i] !== 99 || buf[i + 1] !== 112 || buf[i + 2] !== 117) return;
    i += 3;
    let c = -1;
    if (buf[i] !== 32) { c = 0; while (buf[i] !== 32) c = c * 10 + (buf[i++]! - 48); }
    let field = 0, v = 0;
    for (; i < n && buf[i] !== 10; i++) {
      const ch = buf[i]!;
      if (ch === 32) { if (field === 8) break; field++; v = 0; continue; }
      v = v * 10 + (ch - 48);
    }
    if (c >= 0 && c < MAX_CPUS && field >= 8) {
      if (steal[c]! >= 0 && v > steal[c]!) process.stdout.write(`S ${(prev + MONO).toFixed(3)} ${(now + MONO).toFixed(3)} ${c} ${v - steal[c]!}\n`);
      steal[c] = v;
    }
    while (i < n && buf[i] !== 10) i++;
    i++;
  }
}

function step(): void {
  const t = performance.now();
  const c = cpu.read();
  clock.read();
  const ms = t - last;
  gaps.add(ms, 0, clock.waitMs - wait);
  if (ms > 5) process.stdout.write(`G ${(t + MONO).toFixed(3)} ${ms.toFixed(3)} ${(clock.waitMs - wait).toFixed(3)} ${lastCpu} ${c}\n`);
  sampleSteal(last, t);
  last = t;
  lastCpu = c;
  wait = clock.waitMs;
  setTimeout(step, 1);
}

process.stdin.setEncoding('utf8').on('data', (d: string) => {
  for (let k = 0; k < d.length; k++) {
    if (d[k] !== '\n') continue;
    process.stdout.write(`W ${gaps.count} ${gaps.over5Count} ${gaps.max.toFixed(3)} ${gaps.quantile(0.999).toFixed(3)}\n`);
    gaps = new Gaps();
  }
});
process.stdin.on('end', () => process.exit(0));
sampleSteal(last, last);
setTimeout(step, 1);
