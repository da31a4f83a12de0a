/**
 * Renders a RuleSet (what every area contributed) as text an operator can read and paste:
 * iptables-restore input (with `-m comment` on every rule and a `#` line saying why), the `ip rule` /
 * `ip route` commands, the rt_tables entries, and the matching removal of all of it.
 * Pure functions; src/rules/apply.ts does the same work idempotently against the kernel.
 */
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

const TABLE_ORDER = ['raw', 'mangle', 'nat', 'filter'] as const;

/** iptables-restore's comment module limit (xt_comment: 256 bytes incl. NUL). */
function commentText(c: string): string {
  return `sluice: ${c.replace(/^sluice:?\s*/, '')}`.replace(/["\\\n]/g, "'").slice(0, 255);
}

/** The argv after `-A CHAIN` / `-C CHAIN` / `-D CHAIN`, with the comment match before the target. */
export function iptArgv(r: IptRule): string[] {
  const j = r.args.indexOf('-j');
  const at = j < 0 ? r.args.length : j;
  return [...r.args.slice(0, at), '-m', 'comment', '--comment', commentText(r.comment), ...r.args.slice(at)];
}

function quote(a: string): string {
  return /^[A-Za-z0-9_.:/+!,=@%-]+$/.test(a) ? a : `"${a.replace(/["\\]/g, '\\$&')}"`;
}

function restoreText(rules: IptRule[], op: '-A' | '-D', withWhy: boolean): string {
  const out: string[] = [];
  for (const t of TABLE_ORDER) {
    const inTable = rules.filter((r) => r.table === t);
    if (inTable.length === 0) continue;
    out.push(`*${t}`);
    for (const r of inTable) {
      if (withWhy) out.push(`# ${r.comment}`);
      out.push([op, r.chain, ...iptArgv(r)].map(quote).join(' '));
    }
    out.push('COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

export function renderRuleSet(rs: RuleSet): RenderedRuleSet {
  const restore = restoreText(rs.iptables, '-A', true);
  const restoreRemove = restoreText([...rs.iptables].reverse(), '-D', false);
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
  doc.push('# Kernel rules this config needs. `sluice rules --apply` / `--remove` do all of it idempotently.');
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
