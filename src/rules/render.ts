/**
 * Renders a RuleSet (what every area contributed) as text an operator can read and paste:
 * iptables-restore input (with `-m comment` on every rule and a `#` line saying why), the `ip rule` /
 * `ip route` commands, the rt_tables entries, and the matching removal of all of it.
 * Pure functions; src/rules/apply.ts does the same work idempotently against the kernel.
 */
import { DEFAULT_RULES_CONFIG, type RulesConfig } from './config';
import { restoreLine, wantedArgv, wantedTarget } from './ipt-plan';
import { IPT_TABLES, parseTableState } from './ipt-state';
import type { IptRule, RuleSet } from './types';

export interface RenderedRuleSet {
  /** `iptables-restore --noflush` input that appends every rule. */
  restore: string;
  /** `iptables-restore --noflush` input that deletes them again (reverse order). */
  restoreRemove: string;
  /** `ip rule add ...` / `ip route add ...` command lines. */
  ipCommands: string[];
  /** `ip route del ...` / `ip rule del ...` command lines (reverse order). */
  ipRemoveCommands: string[];
  /** Content for /etc/iproute2/rt_tables.d/sluice.conf (`ID NAME` lines). */
  rtTables: string;
  /** Everything above as one commented document, for `sluice rules`. */
  text: string;
}

function quote(a: string): string {
  return /^[A-Za-z0-9_.:/+!,=@%-]+$/.test(a) ? a : `"${a.replace(/["\\]/g, '\\$&')}"`;
}

/** iptables-restore's comment module limit (xt_comment: 256 bytes incl. NUL); the tag stays whole. */
export function iptArgv(r: IptRule): string[] {
  return wantedArgv(r).argv;
}

/** Sluice's chains, their rules and the jumps, for a table that holds no rule of sluice's yet. */
function restoreText(rules: IptRule[], cfg: RulesConfig, withWhy: boolean): string {
  const out: string[] = [];
  for (const t of IPT_TABLES) {
    const target = wantedTarget(t, rules, parseTableState(t, ''), cfg.chain_prefix, cfg.position);
    if (target.chains.size === 0) continue;
    out.push(`*${t}`);
    for (const [name, lines] of target.chains) {
      out.push(`:${name} - [0:0]`);
      for (const l of lines) {
        if (withWhy && l.why) out.push(`# ${l.why.replace(/\n/g, ' ')}`);
        out.push(restoreLine('-A', name, l.argv));
      }
    }
    for (const [b, jumps] of target.builtin) {
      for (const j of jumps) {
        if (withWhy) out.push(`# the jump: rule ${positionText(cfg.position)} of ${b} (\`--apply\` keeps it there; pasted by hand it is added again each time)`);
        out.push(cfg.position === 'last' ? restoreLine('-A', b, j.line.argv) : restoreLine('-I', b, j.line.argv, cfg.position === 'first' ? 1 : cfg.position));
      }
    }
    out.push('COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

function positionText(p: RulesConfig['position']): string {
  return p === 'first' ? '1 (first)' : p === 'last' ? 'last' : String(p);
}

/** Removal: the jumps, then each chain emptied and deleted (one transaction per table). */
function removeText(rules: IptRule[], cfg: RulesConfig): string {
  const out: string[] = [];
  for (const t of IPT_TABLES) {
    const target = wantedTarget(t, rules, parseTableState(t, ''), cfg.chain_prefix, cfg.position);
    if (target.chains.size === 0) continue;
    out.push(`*${t}`);
    for (const [b, jumps] of target.builtin) for (const j of jumps) out.push(restoreLine('-D', b, j.line.argv));
    for (const name of target.chains.keys()) out.push(`:${name} - [0:0]`, `-X ${name}`);
    out.push('COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

export function renderRuleSet(rs: RuleSet, cfg: RulesConfig = DEFAULT_RULES_CONFIG): RenderedRuleSet {
  const restore = restoreText(rs.iptables, cfg, true);
  const restoreRemove = removeText(rs.iptables, cfg);
  const ipCommands = [
    ...rs.ipRules.map((r) => `ip rule add ${r.args.map(quote).join(' ')}`),
    ...rs.ipRoutes.map((r) => `ip route add ${r.args.map(quote).join(' ')}`),
  ];
  const ipRemoveCommands = [
    ...[...rs.ipRoutes].reverse().map((r) => `ip route del ${r.args.map(quote).join(' ')}`),
    ...[...rs.ipRules].reverse().map((r) => `ip rule del ${r.args.map(quote).join(' ')}`),
  ];
  const tables = dedupeTables(rs);
  const rtTables = tables.map((t) => `${t.id}\t${t.name}\n`).join('');

  const doc: string[] = [];
  doc.push('# Kernel rules this config needs, in sluice\'s own chains with one jump into each. `sluice rules',
    '# --apply` does all of it idempotently (one transaction per table, rolled back if a later step fails),',
    '# `--check` reports what differs, `--remove` takes it out.');
  if (restore) {
    doc.push('', '# ---- iptables: `iptables-restore --noflush < FILE` ----', restore.trimEnd());
  }
  if (tables.length) {
    doc.push('', '# ---- routing table names: /etc/iproute2/rt_tables.d/sluice.conf ----');
    for (const t of tables) doc.push(`#   ${t.id}\t${t.name}`);
  }
  if (ipCommands.length) {
    doc.push('', '# ---- policy routing ----');
    rs.ipRules.forEach((r, i) => doc.push(`# ${r.comment}`, ipCommands[i]!));
    rs.ipRoutes.forEach((r, i) => doc.push(`# ${r.comment}`, ipCommands[rs.ipRules.length + i]!));
  }
  if (restore || ipCommands.length || tables.length) {
    doc.push('', '# ---- removal ----');
    if (restoreRemove) doc.push('# iptables-restore --noflush:', ...restoreRemove.trimEnd().split('\n').map((l) => `#   ${l}`));
    for (const c of ipRemoveCommands) doc.push(`#   ${c}`);
    if (tables.length) doc.push('#   rm /etc/iproute2/rt_tables.d/sluice.conf');
  } else {
    doc.push('# (nothing: this config needs no kernel rules)');
  }
  return { restore, restoreRemove, ipCommands, ipRemoveCommands, rtTables, text: `${doc.join('\n')}\n` };
}

export function dedupeTables(rs: RuleSet): { id: number; name: string }[] {
  const byId = new Map<number, string>();
  for (const t of rs.tables) {
    const had = byId.get(t.id);
    if (had !== undefined && had !== t.name) throw new Error(`routing table ${t.id} is named both ${had} and ${t.name}`);
    byId.set(t.id, t.name);
  }
  return [...byId].map(([id, name]) => ({ id, name }));
}
