/**
 * From what the config needs (a RuleSet) and what one table holds (TableState) to one
 * `iptables-restore --noflush` transaction that makes the table right, and to the list of
 * differences `sluice rules --check` prints. Pure: src/rules/ipt-apply.ts runs the commands.
 *
 * Layout: a rule for built-in chain C goes to PREFIX-C, and C gets one jump into PREFIX-C at the
 * configured position, so a host firewall's terminal DROP/ACCEPT earlier in C cannot shadow it.
 * A `:PREFIX-C - [0:0]` line in a --noflush transaction creates the chain or empties it, so the
 * chain's rules are replaced whole, atomically with the jump (the kernel applies the table's
 * transaction at COMMIT or not at all).
 */
import type { JumpPosition } from './config';
import {
  BUILTIN_CHAINS, builtinKey, isLegacyRule, isOwnedBuiltinRule, isOwnedChainName, jumpKey, kernelKey,
  ownedChain, ruleTag, taggedComment, targetOf, type KernelRule, type TableState,
} from './ipt-state';
import type { IptRule, IptTable } from './types';

/** One rule line as wanted: its key (see ipt-state.ts) and its arguments after `-A CHAIN`. */
export interface WantedLine { key: string; argv: string[]; why?: string }

export interface TableTarget {
  table: IptTable;
  /** Owned chain -> its rules in order. */
  chains: Map<string, WantedLine[]>;
  /** Built-in chain -> owned lines and their 1-based rule number in that chain. */
  builtin: Map<string, { line: WantedLine; index: number }[]>;
  /** Notes for the operator (a position past the chain's end). */
  notes: string[];
}

/** The arguments of one wanted rule, the tagged comment before the target. */
export function wantedArgv(r: IptRule): { key: string; argv: string[] } {
  const tag = ruleTag(r.table, r.chain, r.args);
  const j = r.args.indexOf('-j');
  const at = j < 0 ? r.args.length : j;
  return { key: `tag ${tag}`, argv: [...r.args.slice(0, at), '-m', 'comment', '--comment', taggedComment(r, tag), ...r.args.slice(at)] };
}

export function jumpArgv(prefix: string, builtin: string): string[] {
  const chain = ownedChain(prefix, builtin);
  return ['-m', 'comment', '--comment', `sluice: jump to ${chain} (the rules sluice needs in ${builtin})`, '-j', chain];
}

/** Rules of a built-in chain that are not sluice's, with their 1-based numbers. */
export function foreignRules(st: TableState, chain: string, prefix: string): { rule: KernelRule; index: number }[] {
  return (st.rules.get(chain) ?? []).map((rule, i) => ({ rule, index: i + 1 })).filter((x) => !isOwnedBuiltinRule(st, x.rule, prefix));
}

/** Where the jump goes among the chain's foreign rules: `first` = 1, `last` = after all of them. */
export function jumpIndex(position: JumpPosition, foreign: number): { index: number; clamped: boolean } {
  if (position === 'first') return { index: 1, clamped: false };
  if (position === 'last') return { index: foreign + 1, clamped: false };
  return position > foreign + 1 ? { index: foreign + 1, clamped: true } : { index: position, clamped: false };
}

export function wantedTarget(table: IptTable, rules: IptRule[], st: TableState, prefix: string, position: JumpPosition): TableTarget {
  const t: TableTarget = { table, chains: new Map(), builtin: new Map(), notes: [] };
  for (const r of rules.filter((x) => x.table === table)) {
    if (!BUILTIN_CHAINS[table].includes(r.chain)) throw new Error(`table ${table} has no built-in chain ${r.chain}`);
    const name = ownedChain(prefix, r.chain);
    const list = t.chains.get(name) ?? [];
    list.push({ ...wantedArgv(r), why: r.comment });
    t.chains.set(name, list);
  }
  for (const b of BUILTIN_CHAINS[table]) {
    const name = ownedChain(prefix, b);
    if (!t.chains.has(name)) continue;
    const foreign = foreignRules(st, b, prefix).length;
    const { index, clamped } = jumpIndex(position, foreign);
    if (clamped) t.notes.push(`${table} ${b}: position ${String(position)} is past the end (${foreign} other rule(s)): the jump is appended`);
    t.builtin.set(b, [{ line: { key: jumpKey(name), argv: jumpArgv(prefix, b) }, index }]);
  }
  return t;
}

/** What the table holds now, as a target: rollback puts this back. */
export function currentTarget(st: TableState, prefix: string): TableTarget {
  const t: TableTarget = { table: st.table, chains: new Map(), builtin: new Map(), notes: [] };
  for (const c of st.userChains) {
    if (!isOwnedChainName(c, prefix)) continue;
    t.chains.set(c, (st.rules.get(c) ?? []).map((r) => ({ key: kernelKey(r), argv: r.argv })));
  }
  for (const b of BUILTIN_CHAINS[st.table]) {
    const owned = (st.rules.get(b) ?? []).map((rule, i) => ({ rule, index: i + 1 })).filter((x) => isOwnedBuiltinRule(st, x.rule, prefix));
    if (owned.length) t.builtin.set(b, owned.map((x) => ({ line: { key: builtinKey(x.rule, prefix), argv: x.rule.argv }, index: x.index })));
  }
  return t;
}

function quote(a: string): string {
  return /^[A-Za-z0-9_.:/+!,=@%#-]+$/.test(a) && !a.startsWith('#') ? a : `"${a.replace(/["\\]/g, '\\$&')}"`;
}

export function restoreLine(op: string, chain: string, argv: readonly string[], index?: number): string {
  return [op, chain, ...(index !== undefined ? [String(index)] : []), ...argv].map(quote).join(' ');
}

export interface TablePlan {
  /** iptables-restore --noflush input, or '' when the table is already right. */
  restore: string;
  /** One line per thing that changes, for the report. */
  changes: string[];
}

/**
 * The transaction that turns `st` into `target` for everything sluice owns (and nothing else).
 * `rewrite` names owned chains whose rules must be rewritten even if their keys match (a rule was
 * edited by hand and kept its tag).
 */
export function planTable(st: TableState, target: TableTarget, prefix: string, rewrite: ReadonlySet<string> = new Set()): TablePlan {
  const lines: string[] = [];
  const changes: string[] = [];
  const drops: string[] = [];
  const have = currentTarget(st, prefix);
  const chainNames = new Set([...have.chains.keys(), ...target.chains.keys()]);
  for (const name of chainNames) {
    const want = target.chains.get(name);
    const got = have.chains.get(name);
    if (want) {
      if (got && !rewrite.has(name) && sameKeys(got, want)) continue;
      lines.push(`:${name} - [0:0]`, ...want.map((w) => restoreLine('-A', name, w.argv)));
      changes.push(got ? `${st.table}: ${name} rewritten (${want.length} rule(s))` : `${st.table}: ${name} created (${want.length} rule(s))`);
    } else {
      lines.push(`:${name} - [0:0]`);
      drops.push(`-X ${name}`);
      changes.push(`${st.table}: ${name} deleted`);
    }
  }
  for (const b of BUILTIN_CHAINS[st.table]) {
    const want = target.builtin.get(b) ?? [];
    const got = have.builtin.get(b) ?? [];
    if (got.length === want.length && got.every((g, i) => g.line.key === want[i]!.line.key && g.index === want[i]!.index)) continue;
    const gotRules = (st.rules.get(b) ?? []);
    // Often only a stale line has to go (a rule an older sluice left): if the jumps are where they
    // should be once it is gone, delete just that.
    const seen = new Set<string>();
    const keep = got.filter((g) => want.some((w) => w.line.key === g.line.key) && !seen.has(g.line.key) && seen.add(g.line.key));
    const drop = got.filter((g) => !keep.includes(g));
    const shifted = keep.map((g) => ({ key: g.line.key, index: g.index - drop.filter((d) => d.index < g.index).length }));
    const enough = shifted.length === want.length && shifted.every((k, i) => k.key === want[i]!.line.key && k.index === want[i]!.index);
    for (const g of enough ? drop : got) {
      lines.push(restoreLine('-D', b, g.line.argv));
      const r = gotRules[g.index - 1];
      changes.push(`${st.table} ${b}: removed rule ${g.index}${r && isLegacyRule(st, r) ? ' (left by an older sluice)' : ''}: ${describeLine(g.line)}`);
    }
    if (enough) continue;
    let len = gotRules.length - got.length;
    for (const w of [...want].sort((x, y) => x.index - y.index)) {
      lines.push(w.index <= len ? restoreLine('-I', b, w.line.argv, w.index) : restoreLine('-A', b, w.line.argv));
      changes.push(`${st.table} ${b}: ${w.index <= len ? `inserted at ${w.index}` : 'appended'}: ${describeLine(w.line)}`);
      len++;
    }
  }
  lines.push(...drops);
  if (lines.length === 0) return { restore: '', changes };
  return { restore: `*${st.table}\n${lines.join('\n')}\nCOMMIT\n`, changes };
}

function sameKeys(a: WantedLine[], b: WantedLine[]): boolean {
  return a.length === b.length && a.every((x, i) => x.key === b[i]!.key);
}

function describeLine(l: WantedLine): string {
  const t = targetOf(l.argv);
  return l.key.startsWith('jump ') ? `jump to ${t}` : l.argv.map(quote).join(' ');
}

/** One difference between the config and the kernel. */
export interface Drift { where: string; what: string; /** true: worth knowing, not a difference */ warn?: boolean }

const TERMINAL = new Set(['ACCEPT', 'DROP', 'REJECT', 'NFQUEUE', 'RETURN']);

/** Differences for one table, for `sluice rules --check`. `edited`: owned chains whose -C failed. */
export function driftTable(st: TableState, target: TableTarget, prefix: string, edited: ReadonlyMap<string, string[]>): Drift[] {
  const out: Drift[] = [];
  const have = currentTarget(st, prefix);
  const t = st.table;
  for (const [name, want] of target.chains) {
    const got = have.chains.get(name);
    if (!got) { out.push({ where: `${t} ${name}`, what: `chain missing (${want.length} rule(s) wanted)` }); continue; }
    const gotKeys = got.map((g) => g.key);
    const wantKeys = want.map((w) => w.key);
    for (const w of want) {
      if (!gotKeys.includes(w.key)) out.push({ where: `${t} ${name}`, what: `missing rule: ${restoreLine('-A', name, w.argv)}` });
    }
    const rules = st.rules.get(name) ?? [];
    got.forEach((g, i) => {
      if (!wantKeys.includes(g.key)) out.push({ where: `${t} ${name}`, what: `extra rule ${i + 1}: ${rules[i]?.text ?? ''}` });
    });
    const missingOrExtra = want.some((w) => !gotKeys.includes(w.key)) || got.some((g) => !wantKeys.includes(g.key));
    if (!missingOrExtra && gotKeys.join() !== wantKeys.join()) {
      out.push({ where: `${t} ${name}`, what: `rules in another order or count than the config needs (${gotKeys.length} there, ${wantKeys.length} wanted)` });
    }
    for (const e of edited.get(name) ?? []) out.push({ where: `${t} ${name}`, what: `rule changed by hand (kept its tag, differs): ${e}` });
  }
  for (const [name] of have.chains) {
    if (!target.chains.has(name)) out.push({ where: `${t} ${name}`, what: `chain not needed by this config (${(st.rules.get(name) ?? []).length} rule(s))` });
  }
  for (const b of BUILTIN_CHAINS[t]) {
    const rules = st.rules.get(b) ?? [];
    const want = target.builtin.get(b) ?? [];
    for (const w of want) {
      const at = rules.findIndex((r) => builtinKey(r, prefix) === w.line.key);
      if (at < 0) { out.push({ where: `${t} ${b}`, what: `jump to ${targetOf(w.line.argv)} missing` }); continue; }
      const index = at + 1;
      const foreignBefore = rules.slice(0, at).filter((r) => !isOwnedBuiltinRule(st, r, prefix)).length;
      if (foreignBefore + 1 !== w.index) {
        out.push({ where: `${t} ${b}`, what: `jump to ${targetOf(w.line.argv)} is rule ${index}, wanted ${w.index}` });
      }
      const dupes = rules.filter((r) => builtinKey(r, prefix) === w.line.key).length;
      if (dupes > 1) out.push({ where: `${t} ${b}`, what: `jump to ${targetOf(w.line.argv)} is there ${dupes} times` });
      // Rules ahead of the jump that end the chain for what they match: sluice never sees those packets.
      rules.slice(0, at).forEach((r, i) => {
        if (isOwnedBuiltinRule(st, r, prefix)) return;
        const tg = targetOf(r.argv);
        if (!tg || !TERMINAL.has(tg)) return;
        const unconditional = stripComment(r.argv).indexOf('-j') === 0;
        out.push({ where: `${t} ${b}`, what: `rule ${i + 1} before the jump ${unconditional ? 'ends the chain for EVERY packet (sluice sees none)' : `ends the chain for what it matches (-j ${tg})`}: ${r.text}`, warn: !unconditional });
      });
    }
    rules.forEach((r, i) => {
      const k = builtinKey(r, prefix);
      if (k.startsWith('jump ') && !want.some((w) => w.line.key === k)) out.push({ where: `${t} ${b}`, what: `jump not needed by this config (rule ${i + 1}): ${r.text}` });
      else if (isLegacyRule(st, r)) out.push({ where: `${t} ${b}`, what: `rule ${i + 1} left by an older sluice in the built-in chain: ${r.text}` });
    });
  }
  return out;
}

function stripComment(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-m' && argv[i + 1] === 'comment') { i += 1; continue; }
    if (argv[i] === '--comment') { i += 1; continue; }
    out.push(argv[i]!);
  }
  return out;
}
