/**
 * What sluice owns in one iptables table, read from `iptables -t TABLE -S` (the kernel's own
 * normalized spelling of every rule, which is also valid iptables-restore input):
 *   - its chains, PREFIX-PREROUTING ... PREFIX-POSTROUTING (exact names, so instances with other
 *     prefixes are never touched);
 *   - in the built-in chains, the jumps into them and, from sluice versions that appended straight
 *     to the built-in chains, rules whose comment starts with `sluice:` and whose target is not a
 *     user chain (legacy: --apply moves them into the chains, --check reports them).
 * Every rule sluice writes carries a tag (`#` and 8 hex digits) at the end of its comment: a hash of
 * table, chain and arguments. Comparing tag sequences tells "same rules, same order" without having
 * to spell rules the way the kernel prints them.
 */
import { createHash } from 'node:crypto';
import type { IptRule, IptTable } from './types';

export const BUILTIN_CHAINS: Record<IptTable, readonly string[]> = {
  raw: ['PREROUTING', 'OUTPUT'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
};
export const IPT_TABLES: readonly IptTable[] = ['raw', 'mangle', 'nat', 'filter'];

export function ownedChain(prefix: string, builtin: string): string {
  return `${prefix}-${builtin}`;
}

/** The tag for a rule sluice writes: stable across runs, independent of the comment text. */
export function ruleTag(table: string, chain: string, args: readonly string[]): string {
  return createHash('sha256').update(`${table}\0${chain}\0${args.join('\0')}`).digest('hex').slice(0, 8);
}

const TAG_RE = /#([0-9a-f]{8})$/;

/** Splits one `iptables -S` line the way iptables' save_string quoted it. */
export function splitSaveLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let tok = '';
    if (line[i] === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < line.length) i++;
        tok += line[i++];
      }
      i++;
    } else {
      while (i < line.length && line[i] !== ' ') tok += line[i++];
    }
    out.push(tok);
  }
  return out;
}

export interface KernelRule {
  /** Arguments after `-A CHAIN`, as the kernel spells them. */
  argv: string[];
  /** The whole `-A CHAIN ...` line (for messages and for `-D`). */
  text: string;
}

export interface TableState {
  table: IptTable;
  /** User-defined chains that exist. */
  userChains: Set<string>;
  /** Rules per chain (built-in and user), in order. */
  rules: Map<string, KernelRule[]>;
  /** Built-in chains with their policy. */
  policies: Map<string, string>;
}

export function parseTableState(table: IptTable, save: string): TableState {
  const st: TableState = { table, userChains: new Set(), rules: new Map(), policies: new Map() };
  for (const line of save.split('\n')) {
    const t = splitSaveLine(line.trim());
    if (t.length < 2) continue;
    if (t[0] === '-P') st.policies.set(t[1]!, t[2] ?? '');
    else if (t[0] === '-N') st.userChains.add(t[1]!);
    else if (t[0] === '-A') {
      const list = st.rules.get(t[1]!) ?? [];
      list.push({ argv: t.slice(2), text: line.trim() });
      st.rules.set(t[1]!, list);
    }
  }
  return st;
}

export function commentOf(argv: readonly string[]): string | undefined {
  const k = argv.indexOf('--comment');
  return k < 0 ? undefined : argv[k + 1];
}

export function targetOf(argv: readonly string[]): string | undefined {
  const k = argv.lastIndexOf('-j');
  return k < 0 ? undefined : argv[k + 1];
}

/** The identity used to compare a kernel rule with a wanted one: its tag, a jump's target, or its text. */
export function kernelKey(r: KernelRule): string {
  const tag = commentOf(r.argv)?.match(TAG_RE);
  if (tag) return `tag ${tag[1]}`;
  return `text ${r.text.replace(/^-A \S+ /, '')}`;
}

export function jumpKey(chain: string): string {
  return `jump ${chain}`;
}

/** The kernel rule's key inside a built-in chain: jumps are known by their target. */
export function builtinKey(r: KernelRule, prefix: string): string {
  const t = targetOf(r.argv);
  if (t && isOwnedChainName(t, prefix)) return jumpKey(t);
  return kernelKey(r);
}

export function isOwnedChainName(name: string, prefix: string): boolean {
  return name.startsWith(`${prefix}-`) && ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'].includes(name.slice(prefix.length + 1));
}

/** A rule in a built-in chain that sluice owns: a jump into its chains, or a legacy rule. */
export function isOwnedBuiltinRule(st: TableState, r: KernelRule, prefix: string): boolean {
  const t = targetOf(r.argv);
  if (t && isOwnedChainName(t, prefix)) return true;
  return isLegacyRule(st, r);
}

/** A rule an older sluice appended straight to a built-in chain. */
export function isLegacyRule(st: TableState, r: KernelRule): boolean {
  const t = targetOf(r.argv);
  return /^sluice[: ]/.test(commentOf(r.argv) ?? '') && !(t && st.userChains.has(t));
}

export function isBuiltin(table: IptTable, chain: string): boolean {
  return BUILTIN_CHAINS[table].includes(chain);
}

/** Tagged comment text: `sluice: WHY #TAG`, within xt_comment's 255 bytes. */
export function taggedComment(r: IptRule, tag: string): string {
  const text = `sluice: ${r.comment.replace(/^sluice:?\s*/, '')}`.replace(/["\\\n]/g, "'");
  let body = text;
  while (Buffer.byteLength(body) > 255 - 10) body = body.slice(0, -1);
  return `${body} #${tag}`;
}
