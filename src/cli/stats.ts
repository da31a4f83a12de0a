/** `sluice stats` and `sluice reload`: ask a running sluice over its control socket. */
import { ControlError, controlRequest } from '../control/client';
import { parse, socketOptions, socketPath, UsageError } from './args';

const STATS_HELP = `Usage: sluice stats [-c FILE | -s SOCKET] [--json] [--all] [--watch [-n SECONDS]]

Counters of a running sluice: per queue (received, batches, verdicts, sendmsg calls, errors,
ENOBUFS), per stage (decisions), and every drop reason with its count.
  --json        machine-readable output (with --watch: one JSON object per line)
  --all         include counters that are still zero
  --watch       refresh until Ctrl-C, with each counter's rate per second since the last refresh
  -n SECONDS    --watch interval (default 2, at least 0.1)
`;

const RELOAD_HELP = `Usage: sluice reload [-c FILE | -s SOCKET]

Asks a running sluice to re-read its config file (same as SIGHUP). The new config is validated
first; if it is invalid the running config stays and the errors are printed (exit 2). If sluice
stops before the reload completes (a worker thread died), it says so and why (exit 1).
`;

export interface StatsReply {
  uptimeSeconds: number;
  config: string;
  queues: Record<string, unknown>[];
  held: number;
  /** `sluice trace` / `sluice tap` clients running. */
  traces?: number;
  stages: Record<string, { decisions: Record<string, number>; state?: Record<string, unknown> }>;
  /** HA role and replication (absent without an ha: section). */
  ha?: Record<string, unknown>;
  counters: { name: string; help: string; drop: boolean; value: number }[];
}

export async function statsCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { ...socketOptions, json: { type: 'boolean' }, all: { type: 'boolean' }, watch: { type: 'boolean' },
    interval: { type: 'string', short: 'n' } }, STATS_HELP);
  if (!a) return 0;
  const path = await socketPath(a.values);
  if (a.values.watch) return watch(path, a.values);
  if (a.values.interval !== undefined) throw new UsageError(`-n goes with --watch\n\n${STATS_HELP}`);
  const reply = await controlRequest(path, { cmd: 'stats', args: { all: !!a.values.all } }) as StatsReply;
  if (a.values.json) {
    process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(formatStats(reply));
  return 0;
}

interface JournalStats {
  path: string; degraded: number; last_error?: string; lost_changes: number; compactions: number; write_errors: number;
  replay: { lines: number; records: number; refused: Record<string, number>; not_configured: number };
}

/** The journal's health and what its replay refused, by reason (nothing is skipped silently). */
function formatJournal(j: JournalStats): string[] {
  const refused = Object.entries(j.replay.refused).map(([k, v]) => `${k}=${v}`).join(' ');
  return [
    `    journal ${j.path}: ${j.degraded ? `DEGRADED (${j.last_error ?? 'error'}; ${j.lost_changes} changes not saved)` : 'ok'}, `
      + `${j.compactions} compactions, ${j.write_errors} write errors`,
    `    replay: ${j.replay.records} records from ${j.replay.lines} lines; refused: ${refused || 'none'}`
      + (j.replay.not_configured ? `; ${j.replay.not_configured} for public addresses no longer configured` : ''),
  ];
}

/** `stats --watch`: one request per interval; a refused or lost connection ends it with the error. */
async function watch(path: string, v: { json?: boolean; all?: boolean; interval?: string }): Promise<number> {
  const seconds = v.interval === undefined ? 2 : Number(v.interval);
  if (!(seconds >= 0.1)) throw new UsageError(`-n: seconds between refreshes, at least 0.1 (not ${v.interval})`);
  let prev: { at: number; values: Map<string, number> } | null = null;
  let stop = false;
  let wake = (): void => {};
  const onSignal = (): void => { stop = true; wake(); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const tty = process.stdout.isTTY === true;
  try {
    while (!stop) {
      const r = await controlRequest(path, { cmd: 'stats', args: { all: !!v.all } }) as StatsReply;
      const at = Date.now();
      const values = new Map(r.counters.map((c) => [c.name, c.value]));
      const rates = prev ? new Map([...values].map(([k, x]) => [k, (x - (prev!.values.get(k) ?? 0)) / ((at - prev!.at) / 1000)])) : null;
      prev = { at, values };
      if (v.json) process.stdout.write(`${JSON.stringify({ time: new Date(at).toISOString(), ...r, ...(rates ? { rates: Object.fromEntries(rates) } : {}) })}\n`);
      else process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : '\n'}${new Date(at).toISOString()}  every ${seconds} s, Ctrl-C to stop\n${formatStats(r, rates)}`);
      await new Promise<void>((res) => { const t = setTimeout(res, seconds * 1000); wake = () => { clearTimeout(t); res(); }; });
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  return 0;
}

export function formatStats(r: StatsReply, rates: Map<string, number> | null = null): string {
  const lines: string[] = [`sluice: up ${r.uptimeSeconds.toFixed(0)} s, config ${r.config}, ${r.held} held${r.traces ? `, ${r.traces} tracing` : ''}`];
  lines.push('', 'queues:');
  for (const q of r.queues) {
    lines.push(`  ${Object.entries(q).map(([k, v]) => `${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : String(v)}`).join(' ')}`);
  }
  lines.push('', 'stages:');
  for (const [name, s] of Object.entries(r.stages)) {
    const d = Object.entries(s.decisions).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' ');
    lines.push(`  ${name}: ${d || '(no decisions yet)'}`);
    const j = s.state?.journal as JournalStats | null | undefined;
    if (j) lines.push(...formatJournal(j));
  }
  if (r.ha) lines.push('', ...formatHa(r.ha));
  const drops = r.counters.filter((c) => c.drop);
  const events = r.counters.filter((c) => !c.drop);
  const width = Math.max(10, ...r.counters.map((c) => c.name.length));
  lines.push('', 'counters:');
  const rate = (name: string): string => (rates ? `  ${(rates.get(name) ?? 0).toFixed(1).padStart(10)}/s` : '');
  for (const c of events) lines.push(`  ${c.name.padEnd(width)} ${String(c.value).padStart(12)}${rate(c.name)}`);
  lines.push('', 'drop reasons:');
  if (drops.length === 0) lines.push('  (none)');
  for (const c of drops) lines.push(`  ${c.name.padEnd(width)} ${String(c.value).padStart(12)}${rate(c.name)}  ${c.help}`);
  return `${lines.join('\n')}\n`;
}

/** `ha:` lines of sluice stats and sluice ha status. */
export function formatHa(h: Record<string, unknown>): string[] {
  const kv = (o: unknown) => Object.entries((o ?? {}) as Record<string, unknown>).filter(([, v]) => v !== 0 && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ') || 'none';
  const out = [`ha: ${String(h.role)} since ${String(h.role_since)} (configured ${String(h.configured_role)}); last failover ${String(h.last_failover ?? 'never')}`
    + (h.last_failover ? ` (rebuild ${Number(h.last_promote_ms).toFixed(1)} ms, ${String(h.last_promote_records)} records)` : '')];
  for (const p of (h.peers ?? []) as Record<string, unknown>[]) out.push(`  peer ${kv(p)}`);
  if (h.stream) out.push(`  stream ${kv(h.stream)}`);
  out.push(`  counters ${kv(h.counters)}`, `  rejected ${kv(h.rejected)}`);
  const refused = kv(h.apply_refused), skipped = kv(h.apply_skipped);
  if (refused !== 'none' || skipped !== 'none') out.push(`  records refused ${refused}; skipped ${skipped}`);
  return out;
}

export async function reloadCommand(argv: string[]): Promise<number> {
  const a = parse(argv, socketOptions, RELOAD_HELP);
  if (!a) return 0;
  try {
    const r = await controlRequest(await socketPath(a.values), { cmd: 'reload' }, 30000) as { config: string; stages: string[] };
    process.stdout.write(`reloaded ${r.config}: stages ${r.stages.join(' → ') || '(none)'}\n`);
    return 0;
  } catch (e) {
    // sluice stopped under the reload (a worker thread died): nothing runs any config now.
    if (e instanceof ControlError && e.stopping) {
      process.stderr.write(`sluice reload: not completed:\n${e.message}\n`);
      return 1;
    }
    process.stderr.write(`sluice reload: refused, the running config stays:\n${(e as Error).message}\n`);
    return 2;
  }
}
