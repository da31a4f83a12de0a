/**
 * Applies or removes a RuleSet against the running kernel, idempotently: every iptables rule is
 * checked with `iptables -C` before `-A` (or `-D`), every `ip rule` with `ip rule show SELECTOR`,
 * every route with `ip route show SELECTOR`, and the rt_tables names live in one file of their own
 * (rt_tables.d/sluice.conf) that is rewritten or deleted whole. Running apply twice changes nothing
 * the second time; remove after apply leaves the tables as they were.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { iptArgv, renderRuleSet } from './render';
import type { RuleSet } from './types';

export interface RunResult { code: number; stdout: string; stderr: string }
export type Runner = (cmd: string, args: string[]) => RunResult;

export interface ApplyOptions {
  /** Runs a command (injectable for tests); default spawnSync without a shell. */
  run?: Runner;
  /**
   * Where the routing table names go; default $SLUICE_RT_TABLES (empty: skip), else
   * /etc/iproute2/rt_tables.d/sluice.conf; null: skip. (Namespaces share /etc: tests point it elsewhere.)
   */
  rtTablesPath?: string | null;
  /** iptables binary (default `iptables`). */
  iptables?: string;
}

export interface ApplyReport {
  /** Commands that changed something, in order. */
  changed: string[];
  /** Items already in the wanted state. */
  unchanged: number;
}

export const DEFAULT_RT_TABLES = '/etc/iproute2/rt_tables.d/sluice.conf';

const defaultRun: Runner = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return { code: 127, stdout: '', stderr: String(r.error.message) };
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
};

function must(run: Runner, cmd: string, args: string[]): void {
  const r = run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
}

function rtTablesPath(opts: ApplyOptions): string | null {
  if (opts.rtTablesPath !== undefined) return opts.rtTablesPath;
  const env = process.env.SLUICE_RT_TABLES;
  if (env !== undefined) return env === '' ? null : env;
  return DEFAULT_RT_TABLES;
}

export function applyRuleSet(rs: RuleSet, opts: ApplyOptions = {}): ApplyReport {
  const run = opts.run ?? defaultRun;
  const ipt = opts.iptables ?? 'iptables';
  const rep: ApplyReport = { changed: [], unchanged: 0 };
  const rtPath = rtTablesPath(opts);
  const rt = renderRuleSet(rs).rtTables;
  if (rtPath !== null && rt) {
    const had = existsSync(rtPath) ? readFileSync(rtPath, 'utf8') : null;
    if (had !== rt) { writeFileSync(rtPath, rt); rep.changed.push(`write ${rtPath}`); } else rep.unchanged++;
  }
  for (const r of rs.iptables) {
    const argv = iptArgv(r);
    if (run(ipt, ['-w', '-t', r.table, '-C', r.chain, ...argv]).code === 0) { rep.unchanged++; continue; }
    must(run, ipt, ['-w', '-t', r.table, '-A', r.chain, ...argv]);
    rep.changed.push(`${ipt} -t ${r.table} -A ${r.chain} ${argv.join(' ')}`);
  }
  // Routes before the rules that point at their tables, so no packet is steered into an empty table.
  for (const r of rs.ipRoutes) {
    if (run('ip', ['route', 'show', ...r.args]).stdout.trim() !== '') { rep.unchanged++; continue; }
    must(run, 'ip', ['route', 'add', ...r.args]);
    rep.changed.push(`ip route add ${r.args.join(' ')}`);
  }
  for (const r of rs.ipRules) {
    if (run('ip', ['rule', 'show', ...r.args]).stdout.trim() !== '') { rep.unchanged++; continue; }
    must(run, 'ip', ['rule', 'add', ...r.args]);
    rep.changed.push(`ip rule add ${r.args.join(' ')}`);
  }
  return rep;
}

export function removeRuleSet(rs: RuleSet, opts: ApplyOptions = {}): ApplyReport {
  const run = opts.run ?? defaultRun;
  const ipt = opts.iptables ?? 'iptables';
  const rep: ApplyReport = { changed: [], unchanged: 0 };
  for (const r of [...rs.ipRules].reverse()) {
    // A rule added twice by hand is removed as often as it is there.
    let n = 0;
    while (n < 64 && run('ip', ['rule', 'show', ...r.args]).stdout.trim() !== '') {
      must(run, 'ip', ['rule', 'del', ...r.args]);
      rep.changed.push(`ip rule del ${r.args.join(' ')}`);
      n++;
    }
    if (n === 0) rep.unchanged++;
  }
  for (const r of [...rs.ipRoutes].reverse()) {
    if (run('ip', ['route', 'show', ...r.args]).stdout.trim() === '') { rep.unchanged++; continue; }
    must(run, 'ip', ['route', 'del', ...r.args]);
    rep.changed.push(`ip route del ${r.args.join(' ')}`);
  }
  for (const r of [...rs.iptables].reverse()) {
    const argv = iptArgv(r);
    let n = 0;
    while (n < 64 && run(ipt, ['-w', '-t', r.table, '-C', r.chain, ...argv]).code === 0) {
      must(run, ipt, ['-w', '-t', r.table, '-D', r.chain, ...argv]);
      rep.changed.push(`${ipt} -t ${r.table} -D ${r.chain} ${argv.join(' ')}`);
      n++;
    }
    if (n === 0) rep.unchanged++;
  }
  const rtPath = rtTablesPath(opts);
  if (rtPath !== null && rs.tables.length > 0) {
    if (existsSync(rtPath)) { rmSync(rtPath); rep.changed.push(`rm ${rtPath}`); } else rep.unchanged++;
  }
  return rep;
}
