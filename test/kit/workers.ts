/**
 * The worker-threads mode of the namespace tests. SLUICE_TEST_WORKERS=N (N > 1) runs every gateway
 * a test starts with `workers: N`: each configured queue q becomes queues q..q+N-1 and the kernel
 * rules send to them with --queue-balance q:q+N-1 (src/cli/pipeline.ts spreadQueues). scripts/test.sh
 * runs the namespace files that use this a second time with N = 2 (not ha.test: its workers run is
 * manual, docs/ha.md).
 *
 * A test that writes its config uses withTestWorkers(yaml) for both `sluice rules` and `sluice run`;
 * one that installs NFQUEUE rules itself spreads them with spreadTestQueues(); and after start,
 * assertWorkerQueues() proves the mode under test is the one running.
 */
import type { Config } from '../../src/config/schema';
import { parse } from 'yaml';
import { spreadQueues } from '../../src/cli/pipeline';
import type { Lab, Namespace } from '../../src/lab/lab';
import { SluiceProcess } from '../../src/lab/sluice';
import type { RuleSet } from '../../src/rules';

export const TEST_WORKERS = Math.max(1, Number(process.env.SLUICE_TEST_WORKERS ?? 1) || 1);

/** `workers: N` in front of yaml (N > 1 and yaml sets no `workers:` itself); else yaml unchanged. */
export function withTestWorkers(yaml: string, workers = TEST_WORKERS): string {
  if (workers <= 1 || /^workers:/m.test(yaml)) return yaml;
  return `workers: ${workers}\n${yaml}`;
}

/** A stage's rule set with every `--queue-num q` spread over the workers' queues (unchanged for N = 1). */
export function spreadTestQueues(rs: RuleSet, workers = TEST_WORKERS): RuleSet {
  return spreadQueues({ workers, queue_cpu_fanout: false } as Config, rs);
}

/** `-j NFQUEUE --queue-num q` written by hand, as iptables arguments for the mode under test. */
export function nfqueueTarget(queue: number, workers = TEST_WORKERS): string[] {
  return workers > 1 ? ['-j', 'NFQUEUE', '--queue-balance', `${queue}:${queue + workers - 1}`] : ['-j', 'NFQUEUE', '--queue-num', String(queue)];
}

/** The same as one shell word string (for iptables lines in a script). */
export function nfqueueTargetText(queue: number, workers = TEST_WORKERS): string {
  return nfqueueTarget(queue, workers).join(' ');
}

/**
 * Throws unless the running sluice serves exactly the queues `configured` imply in this mode
 * (q..q+N-1 for each, one per worker thread).
 */
export async function assertWorkerQueues(stats: () => Promise<{ queues: Record<string, unknown>[] }>, configured: number[], workers = TEST_WORKERS): Promise<void> {
  if (workers <= 1) return;
  const st = await stats();
  const nums = st.queues.map((q) => Number(q.queue)).sort((a, b) => a - b);
  const want = configured.flatMap((q) => Array.from({ length: workers }, (_, k) => q + k)).sort((a, b) => a - b);
  if (JSON.stringify(nums) !== JSON.stringify(want)) throw new Error(`workers: ${workers} expected queues ${want.join(',')}, sluice runs ${nums.join(',')}`);
}

/** SluiceProcess.start with withTestWorkers(yaml), checked with assertWorkerQueues. */
export async function startSluiceWorkers(lab: Lab, ns: Namespace, yaml: string, opts: Parameters<typeof SluiceProcess.start>[3] = {}): Promise<SluiceProcess> {
  const text = withTestWorkers(yaml);
  const sp = await SluiceProcess.start(lab, ns, text, opts);
  try {
    await assertWorkerQueues(() => sp.stats(), ((parse(text) as { queues?: { num: number }[] }).queues ?? []).map((q) => q.num));
  } catch (e) {
    await sp.stop();
    throw e;
  }
  return sp;
}
