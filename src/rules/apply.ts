/**
 * Applies, removes and checks a RuleSet against the running kernel, with iptables:
 *   1. the rt_tables names file (rt_tables.d/sluice.conf, whole);
 *   2. one `iptables-restore --noflush` per table (raw, mangle, nat, filter): sluice's chains and the
 *      jumps into them, atomic per table (src/rules/ipt-plan.ts);
 *   3. `ip route add`, then `ip rule add` (a rule never points at an empty table).
 * Each step records how to undo itself; when a later step fails, the earlier ones are undone in
 * reverse (tables are put back to what they held for sluice's chains and jumps; routes and rules
 * this run added are deleted) and the error names the failing command and what was rolled back.
 * Running apply twice changes nothing the second time. Remove takes out everything sluice owns under
 * the chain prefix, whatever config put it there. The nftables backend is src/rules/nft-apply.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from './config';
import { currentTarget, driftTable, planTable, restoreLine, wantedTarget, type Drift, type TableTarget } from './ipt-plan';
import { IPT_TABLES, isOwnedChainName, parseTableState, type TableState } from './ipt-state';
import { renderRuleSet } from './render';
import type { IptTable, RuleSet } from './types';

export interface RunResult { code: number; stdout: string; stderr: string }
export type Runner = (cmd: string, args: string[], input?: string) => RunResult;

export interface ApplyOptions {
  /** Runs a command (injectable for tests); default spawnSync without a shell. */
  run?: Runner;
  /**
   * Where the routing table names go; default $SLUICE_RT_TABLES (empty: skip), else
   * /etc/iproute2/rt_tables.d/sluice.conf; null: skip. (Namespaces share /etc: tests point it elsewhere.)
   */
  rtTablesPath?: string | null;
  /** iptables binary (default `iptables`); the restore binary is this name + `-restore`. */
  iptables?: string;
  /** With iptables-legacy: the tables that exist (default /proc/net/ip_tables_names). */
  legacyTables?: string[];
  /** Chain prefix, jump position, backend (the config's `rules:` section). */
  rules?: RulesConfig;
}

export interface ApplyReport {
  /** What changed, in order. */
  changed: string[];
  /** Items already in the wanted state. */
  unchanged: number;
  /** Things the operator should know (a position past a chain's end...). */
  notes: string[];
}

export class ApplyError extends Error {}

export const DEFAULT_RT_TABLES = '/etc/iproute2/rt_tables.d/sluice.conf';

export const defaultRun: Runner = (cmd, args, input) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  if (r.error) return { code: 127, stdout: '', stderr: String(r.error.message) };
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
};

export function must(run: Runner, cmd: string, args: string[], input?: string): RunResult {
  const r = run(cmd, args, input);
  if (r.code !== 0) throw new ApplyError(`${cmd} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r;
}

export function rtTablesPath(opts: ApplyOptions): string | null {
  if (opts.rtTablesPath !== undefined) return opts.rtTablesPath;
  const env = process.env.SLUICE_RT_TABLES;
  if (env !== undefined) return env === '' ? null : env;
  return DEFAULT_RT_TABLES;
}

interface Ctx { run: Runner; ipt: string; cfg: RulesConfig; only: Set<string> | null }

function ctxOf(opts: ApplyOptions): Ctx {
  const ipt = opts.iptables ?? 'iptables';
  // Listing a legacy table that is not there creates it (the module instantiates it): read only
  // the ones the kernel already has, the others are empty.
  // (Unreadable, as under the unit's capabilities: every table is read, creating what is missing.)
  const known = ipt === 'iptables-legacy' ? (opts.legacyTables ?? legacyTables()) : null;
  const only = known ? new Set(known) : null;
  return { run: opts.run ?? defaultRun, ipt, cfg: opts.rules ?? DEFAULT_RULES_CONFIG, only };
}

export function readTable(c: Ctx, table: IptTable): TableState {
  if (c.only && !c.only.has(table)) return parseTableState(table, '');
  return parseTableState(table, must(c.run, c.ipt, ['-w', '-t', table, '-S']).stdout);
}

/** Legacy iptables tables loaded in this network namespace; null when that cannot be read (root-only). */
export function legacyTables(): string[] | null {
  try { return readFileSync('/proc/net/ip_tables_names', 'utf8').split('\n').filter(Boolean); } catch { return existsSync('/proc/net/ip_tables_names') ? null : []; }
}

/**
 * Which iptables binary holds the host's firewall: `iptables` unless it is the nf_tables variant
 * while legacy tables are loaded (a firewall written with iptables-legacy): then `iptables-legacy`,
 * so sluice's jump lands in the chains whose rules it must come before.
 */
export function iptablesBinary(run: Runner, legacy: string[] = legacyTables() ?? []): { bin: string; why: string } {
  const v = run('iptables', ['-V']).stdout;
  if (legacy.length && /nf_tables/.test(v) && run('iptables-legacy', ['-V']).code === 0) {
    return { bin: 'iptables-legacy', why: `legacy tables are loaded (${legacy.join(', ')}) while iptables is ${v.trim()}` };
  }
  return { bin: 'iptables', why: v.trim() || 'iptables -V said nothing' };
}

function restore(c: Ctx, text: string): void {
  must(c.run, `${c.ipt}-restore`, ['-w', '--noflush'], text);
}

/** Owned chains whose keys match but where `iptables -C` does not find a wanted rule (edited by hand). */
function editedChains(c: Ctx, st: TableState, target: TableTarget): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const have = currentTarget(st, c.cfg.chain_prefix);
  for (const [name, want] of target.chains) {
    const keys = new Set((have.chains.get(name) ?? []).map((g) => g.key));
    for (const w of want) {
      if (!keys.has(w.key)) continue;
      if (c.run(c.ipt, ['-w', '-t', st.table, '-C', name, ...w.argv]).code === 0) continue;
      const list = out.get(name) ?? [];
      list.push(restoreLine('-A', name, w.argv));
      out.set(name, list);
    }
  }
  return out;
}

function ipShow(c: Ctx, what: 'rule' | 'route', args: string[]): boolean {
  return c.run('ip', [what, 'show', ...args]).stdout.trim() !== '';
}

export function applyRuleSet(rs: RuleSet, opts: ApplyOptions = {}): ApplyReport {
  const c = ctxOf(opts);
  const rep: ApplyReport = { changed: [], unchanged: 0, notes: [] };
  const undo: UndoStep[] = [];
  try {
    writeRtTables(rs, opts, rep, undo);
    for (const table of IPT_TABLES) {
      const st = readTable(c, table);
      const target = wantedTarget(table, rs.iptables, st, c.cfg.chain_prefix, c.cfg.position);
      rep.notes.push(...target.notes);
      const plan = planTable(st, target, c.cfg.chain_prefix, new Set(editedChains(c, st, target).keys()));
      if (!plan.restore) { if (target.chains.size) rep.unchanged++; continue; }
      restore(c, plan.restore);
      rep.changed.push(...plan.changes);
      const before = currentTarget(st, c.cfg.chain_prefix);
      undo.push({ what: `table ${table} put back`, fn: () => {
        const back = planTable(readTable(c, table), before, c.cfg.chain_prefix);
        if (back.restore) restore(c, back.restore);
      } });
    }
    for (const r of rs.ipRoutes) {
      if (ipShow(c, 'route', r.args)) { rep.unchanged++; continue; }
      must(c.run, 'ip', ['route', 'add', ...r.args]);
      rep.changed.push(`ip route add ${r.args.join(' ')}`);
      undo.push({ what: `ip route del ${r.args.join(' ')}`, fn: () => { must(c.run, 'ip', ['route', 'del', ...r.args]); } });
    }
    for (const r of rs.ipRules) {
      if (ipShow(c, 'rule', r.args)) { rep.unchanged++; continue; }
      must(c.run, 'ip', ['rule', 'add', ...r.args]);
      rep.changed.push(`ip rule add ${r.args.join(' ')}`);
      undo.push({ what: `ip rule del ${r.args.join(' ')}`, fn: () => { must(c.run, 'ip', ['rule', 'del', ...r.args]); } });
    }
  } catch (e) {
    throw new ApplyError(`${(e as Error).message}\n${rollback(undo)}`);
  }
  return rep;
}

/** Runs the undo steps in reverse; every one is tried even if one fails. */
/** An undo step of a transactional apply (run in reverse order when a later step fails). */
export type UndoStep = { what: string; fn: () => void };

/** The routing table names file (first step of both backends' apply), with its undo step. */
export function writeRtTables(rs: RuleSet, opts: ApplyOptions, rep: ApplyReport, undo: UndoStep[]): void {
  const rtPath = rtTablesPath(opts);
  const rt = renderRuleSet(rs).rtTables;
  if (rtPath === null || !rt) return;
  const had = existsSync(rtPath) ? readFileSync(rtPath, 'utf8') : null;
  if (had === rt) { rep.unchanged++; return; }
  writeFileSync(rtPath, rt);
  rep.changed.push(`write ${rtPath}`);
  undo.push({ what: `${rtPath} put back`, fn: () => (had === null ? rmSync(rtPath, { force: true }) : writeFileSync(rtPath, had)) });
}

export function rollback(undo: UndoStep[]): string {
  if (undo.length === 0) return 'nothing had been changed yet';
  const done: string[] = [];
  const failed: string[] = [];
  for (const u of [...undo].reverse()) {
    try { u.fn(); done.push(u.what); } catch (e) { failed.push(`${u.what}: ${(e as Error).message}`); }
  }
  let msg = `rolled back: ${done.join('; ') || 'nothing'}`;
  if (failed.length) msg += `\nROLLBACK FAILED (fix by hand, then sluice rules --check): ${failed.join('; ')}`;
  return msg;
}

export function removeRuleSet(rs: RuleSet, opts: ApplyOptions = {}): ApplyReport {
  const c = ctxOf(opts);
  const rep: ApplyReport = { changed: [], unchanged: 0, notes: [] };
  for (const r of [...rs.ipRules].reverse()) {
    // A rule added twice by hand is removed as often as it is there.
    let n = 0;
    while (n < 64 && ipShow(c, 'rule', r.args)) {
      must(c.run, 'ip', ['rule', 'del', ...r.args]);
      rep.changed.push(`ip rule del ${r.args.join(' ')}`);
      n++;
    }
    if (n === 0) rep.unchanged++;
  }
  for (const r of [...rs.ipRoutes].reverse()) {
    if (!ipShow(c, 'route', r.args)) { rep.unchanged++; continue; }
    must(c.run, 'ip', ['route', 'del', ...r.args]);
    rep.changed.push(`ip route del ${r.args.join(' ')}`);
  }
  const empty = (table: IptTable): TableTarget => ({ table, chains: new Map(), builtin: new Map(), notes: [] });
  for (const table of IPT_TABLES) {
    const plan = planTable(readTable(c, table), empty(table), c.cfg.chain_prefix);
    if (!plan.restore) continue;
    restore(c, plan.restore);
    rep.changed.push(...plan.changes);
  }
  const rtPath = rtTablesPath(opts);
  if (rtPath !== null && rs.tables.length > 0) {
    if (existsSync(rtPath)) { rmSync(rtPath); rep.changed.push(`rm ${rtPath}`); } else rep.unchanged++;
  }
  return rep;
}

/** True when any table holds one of sluice's chains under this prefix (auto backend keeps iptables then). */
export function readIptOwned(prefix: string, opts: ApplyOptions = {}): boolean {
  const c = ctxOf(opts);
  return IPT_TABLES.some((t) => {
    try { return [...readTable(c, t).userChains].some((n) => isOwnedChainName(n, prefix)); } catch { return false; }
  });
}

/** Differences between what the config needs and what the kernel has (iptables backend). */
export function checkIptables(rs: RuleSet, opts: ApplyOptions = {}): Drift[] {
  const c = ctxOf(opts);
  const out: Drift[] = [];
  for (const table of IPT_TABLES) {
    const st = readTable(c, table);
    const target = wantedTarget(table, rs.iptables, st, c.cfg.chain_prefix, c.cfg.position);
    out.push(...driftTable(st, target, c.cfg.chain_prefix, editedChains(c, st, target)));
  }
  out.push(...checkRouting(rs, opts));
  return out;
}

/** Missing ip routes / ip rules and a stale rt_tables file (both backends need these). */
export function checkRouting(rs: RuleSet, opts: ApplyOptions = {}): Drift[] {
  const c = ctxOf(opts);
  const out: Drift[] = [];
  for (const r of rs.ipRoutes) {
    if (!ipShow(c, 'route', r.args)) out.push({ where: 'ip route', what: `missing: ip route add ${r.args.join(' ')}` });
  }
  for (const r of rs.ipRules) {
    if (!ipShow(c, 'rule', r.args)) out.push({ where: 'ip rule', what: `missing: ip rule add ${r.args.join(' ')}` });
  }
  const rtPath = rtTablesPath(opts);
  const rt = renderRuleSet(rs).rtTables;
  if (rtPath !== null && rt && (!existsSync(rtPath) || readFileSync(rtPath, 'utf8') !== rt)) {
    out.push({ where: 'rt_tables', what: `${rtPath} does not hold the table names (cosmetic: ip rule show prints numbers)` });
  }
  return out;
}

