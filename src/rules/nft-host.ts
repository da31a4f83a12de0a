/**
 * The host's own nftables base chains that can hide packets from sluice's table (nft backend).
 * In nftables every base chain of a hook sees the packet in priority order; an `accept` ends only
 * that chain, a `drop` (a rule's or the chain's policy) ends the packet. So a host chain on the same
 * hook with a lower priority than sluice's (or the same: the order is then not defined) that can
 * drop is worth a warning in `--check`; one whose policy is drop hides every packet it does not
 * accept. Read from `nft list ruleset`.
 */
import type { Drift } from './ipt-plan';

/** nft's symbolic priorities (nft(8), "PRIORITY"), family inet/ip. */
const NAMED: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };

export function parsePriority(text: string): number | null {
  const m = text.trim().match(/^(-?\d+|[a-z]+)(?:\s*([+-])\s*(\d+))?$/);
  if (!m) return null;
  const base = /^-?\d+$/.test(m[1]!) ? Number(m[1]) : NAMED[m[1]!];
  if (base === undefined) return null;
  return m[2] ? base + (m[2] === '+' ? 1 : -1) * Number(m[3]) : base;
}

export interface BaseChain { family: string; table: string; chain: string; hook: string; priority: number; policyDrop: boolean; drops: number }

export function baseChains(ruleset: string): BaseChain[] {
  const out: BaseChain[] = [];
  let family = '', table = '';
  let cur: BaseChain | null = null;
  for (const line of ruleset.split('\n')) {
    const t = line.match(/^table (\S+) (\S+) \{/);
    if (t) { family = t[1]!; table = t[2]!; cur = null; continue; }
    const c = line.match(/^\s*chain (\S+) \{/);
    if (c) { cur = { family, table, chain: c[1]!, hook: '', priority: 0, policyDrop: false, drops: 0 }; continue; }
    if (!cur) continue;
    const h = line.match(/^\s*type \S+ hook (\S+)(?: device \S+)? priority ([^;]+);(?: policy (\S+);)?/);
    if (h) {
      const p = parsePriority(h[2]!);
      if (p !== null) { cur.hook = h[1]!; cur.priority = p; cur.policyDrop = h[3] === 'drop'; out.push(cur); }
      continue;
    }
    if (/\b(drop|reject)\b/.test(line.replace(/comment "[^"]*"/, ''))) cur.drops++;
  }
  return out;
}

/** Warnings for sluice's base chains (hook, priority) against the host's that can drop first. */
export function hostShadows(ruleset: string, ownTable: string): Drift[] {
  const chains = baseChains(ruleset);
  const own = chains.filter((c) => c.family === 'inet' && c.table === ownTable);
  const out: Drift[] = [];
  for (const o of own) {
    for (const h of chains) {
      if (h.family === 'inet' && h.table === ownTable) continue;
      if (!['inet', 'ip'].includes(h.family) || h.hook !== o.hook || h.priority > o.priority) continue;
      if (!h.policyDrop && h.drops === 0) continue;
      const when = h.priority < o.priority ? `runs before it (priority ${h.priority} < ${o.priority})` : `has the same priority (${h.priority}: the order is not defined)`;
      const what = h.policyDrop ? 'policy drop: every packet it does not accept is dropped before sluice sees it'
        : `${h.drops} drop/reject rule(s): what they match never reaches sluice`;
      out.push({ where: `nft inet ${ownTable} ${o.chain}`, what: `${h.family} ${h.table} ${h.chain} (hook ${h.hook}) ${when}; ${what}`, warn: true });
    }
  }
  return out;
}
