/**
 * The stall bench's fine steal sampler, a process of its own at normal priority: every 20 ms it
 * reads each CPU's run-queue clock and task clock from debugfs (sched/debug). The task clock leaves
 * out the hypervisor's steal (CONFIG_PARAVIRT_TIME_ACCOUNTING), so clock less clock_task is the
 * CPU's steal so far, to the ns (/proc/stat has it in 10 ms ticks). A read costs ~1.4 ms (the file
 * lists every runqueue), hence the low rate and the normal priority: it never delays the bench's
 * real-time threads. steal.ts starts it in a private mount namespace with debugfs mounted there.
 * Output, one line per CPU per read (CLOCK_MONOTONIC ms before and after the read):
 *   C <before> <after> <cpu> <clock - clock_task, ms>
 */
import { readFileSync } from 'node:fs';

const MONO = Number(process.hrtime.bigint()) / 1e6 - performance.now();
const PATH = '/sys/kernel/debug/sched/debug';
const LINE = /^cpu#(\d+)|^ {2}\.clock {2,}: ([\d.]+)|^ {2}\.clock_task {2,}: ([\d.]+)/gm;

function sample(): void {
  const before = performance.now() + MONO;
  const text = readFileSync(PATH, 'latin1');
  const after = performance.now() + MONO;
  let cpu = -1, clock = 0, out = '';
  for (const m of text.matchAll(LINE)) {
    if (m[1] !== undefined) cpu = Number(m[1]);
    else if (m[2] !== undefined) clock = Number(m[2]);
    else if (m[3] !== undefined && cpu >= 0) out += `C ${before.toFixed(3)} ${after.toFixed(3)} ${cpu} ${(clock - Number(m[3])).toFixed(6)}\n`;
  }
  process.stdout.write(out);
}

try { readFileSync(PATH, 'latin1'); } catch (e) {
  process.stderr.write(`steal-clock: ${PATH} not readable (${(e as Error).message}); fine steal figures off\n`);
  process.exit(0);
}
process.stdout.on('error', () => process.exit(0));
setInterval(sample, 20);
process.stdin.resume().on('end', () => process.exit(0));
