/**
 * The nftables backend of `sluice rules --apply / --remove / --check`, and the choice of backend.
 *   apply:  one `nft -f` transaction that replaces `table inet NAME` whole (src/rules/nft.ts), then
 *           the same ip routes / ip rules as the iptables backend, with the same rollback: if a
 *           route fails, the table goes back to what it was (or is deleted if it was not there).
 *   remove: `nft delete table inet NAME`.
 *   check:  the table's chains and, per chain, the rule tags in order (the tag ends each comment).
 * `auto` picks nft when the host uses nftables natively (see detectBackend) and the kernel can load
 * the ruleset (a check-only transaction first: where nft_queue is missing, the queue statements
 * cannot load, and auto falls back to iptables, whose NFQUEUE target goes through the xt compat layer).
 */
import { readFileSync } from 'node:fs';
import { ApplyError, checkRouting, defaultRun, must, rollback, writeRtTables, type ApplyOptions, type UndoStep, type ApplyReport, type Runner } from './apply';
import { DEFAULT_RULES_CONFIG } from './config';
import type { Drift } from './ipt-plan';
import { ruleTag } from './ipt-state';
import { hostShadows } from './nft-host';
import { nftChainName, renderNft } from './nft';
import type { RuleSet } from './types';

export function nftTableName(prefix: string): string {
  return prefix.toLowerCase();
}

function opts2(opts: ApplyOptions): { run: Runner; table: string } {
  return { run: opts.run ?? defaultRun, table: nftTableName((opts.rules ?? DEFAULT_RULES_CONFIG).chain_prefix) };
}

/** The table as `nft list` prints it, or null when it does not exist. */
export function listNftTable(run: Runner, table: string): string | null {
  const r = run('nft', ['list', 'table', 'inet', table]);
  return r.code === 0 ? r.stdout : null;
}

/** Chain name -> rule tags in order, from `nft list table` output. */
export function nftTags(listing: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let chain: string[] | null = null;
  for (const line of listing.split('\n')) {
    const c = line.match(/^\s*chain (\S+) \{/);
    if (c) { chain = []; out.set(c[1]!, chain); continue; }
    if (!chain) continue;
    if (/^\t\}$/.test(line)) { chain = null; continue; } // the chain's closing brace (rules are two tabs in)
    const text = line.trim();
    if (text === '' || text === '}' || text.startsWith('#') || /^type \S+ hook /.test(text) || /^policy \S+;$/.test(text)) continue;
    const tag = text.match(/comment "[^"]*#([0-9a-f]{8})"$/);
    chain.push(tag ? tag[1]! : `untagged: ${text}`);
  }
  return out;
}

export function wantedNftTags(rs: RuleSet): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const t of ['raw', 'mangle', 'nat', 'filter'] as const) {
    for (const r of rs.iptables.filter((x) => x.table === t)) {
      const name = nftChainName(r);
      const list = out.get(name) ?? [];
      list.push(ruleTag(r.table, r.chain, r.args));
      out.set(name, list);
    }
  }
  return out;
}

const QUEUE_MISSING = /Could not process rule: No such file or directory[^\n]*\n[^\n]*\bqueue\b/;

function nftLoad(run: Runner, text: string, checkOnly = false): void {
  const r = run('nft', [...(checkOnly ? ['-c'] : []), '-f', '/dev/stdin'], text);
  if (r.code === 0) return;
  const hint = QUEUE_MISSING.test(r.stderr)
    ? '\nthe kernel has no nft_queue (CONFIG_NFT_QUEUE): the queue statement cannot load; use rules.backend: iptables (its NFQUEUE target works through the xt compat layer)'
    : '';
  throw new ApplyError(`nft -f: ${r.stderr.trim() || `exit ${r.code}`}${hint}`);
}

function sameTags(a: Map<string, string[]>, b: Map<string, string[]>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if ((b.get(k) ?? []).join() !== v.join() || !b.has(k)) return false;
  return true;
}

export function applyNft(rs: RuleSet, opts: ApplyOptions = {}): ApplyReport {
  const { run, table } = opts2(opts);
  const rep: ApplyReport = { changed: [], unchanged: 0, notes: [] };
  const undo: UndoStep[] = [];
  const nft = renderNft(rs, table);
  try {
    writeRtTables(rs, opts, rep, undo);
    const before = listNftTable(run, table);
    const want = wantedNftTags(rs);
    if (before !== null && sameTags(nftTags(before), want)) rep.unchanged++;
    else if (nft.ruleset || before !== null) {
      nftLoad(run, nft.ruleset || nft.remove);
      rep.changed.push(nft.ruleset ? `nft: table inet ${table} ${before === null ? 'created' : 'replaced'} (${[...want.values()].flat().length} rule(s))` : `nft: table inet ${table} deleted (no netfilter rules needed)`);
      undo.push({ what: `nft table inet ${table} put back`, fn: () => nftLoad(run, before === null ? nft.remove : `${nft.remove}${before}`) });
    }
    for (const r of rs.ipRoutes) {
      if (run('ip', ['route', 'show', ...r.args]).stdout.trim() !== '') { rep.unchanged++; continue; }
      must(run, 'ip', ['route', 'add', ...r.args]);
      rep.changed.push(`ip route add ${r.args.join(' ')}`);
      undo.push({ what: `ip route del ${r.args.join(' ')}`, fn: () => { must(run, 'ip', ['route', 'del', ...r.args]); } });
    }
    for (const r of rs.ipRules) {
      if (run('ip', ['rule', 'show', ...r.args]).stdout.trim() !== '') { rep.unchanged++; continue; }
      must(run, 'ip', ['rule', 'add', ...r.args]);
      rep.changed.push(`ip rule add ${r.args.join(' ')}`);
      undo.push({ what: `ip rule del ${r.args.join(' ')}`, fn: () => { must(run, 'ip', ['rule', 'del', ...r.args]); } });
    }
  } catch (e) {
    throw new ApplyError(`${(e as Error).message}\n${rollback(undo)}`);
  }
  return rep;
}

/** Deletes the table (the ip rules / routes go through removeRuleSet's routing part). */
export function removeNftTable(opts: ApplyOptions = {}): string[] {
  const { run, table } = opts2(opts);
  if (listNftTable(run, table) === null) return [];
  must(run, 'nft', ['delete', 'table', 'inet', table]);
  return [`nft delete table inet ${table}`];
}

export function checkNft(rs: RuleSet, opts: ApplyOptions = {}): Drift[] {
  const { run, table } = opts2(opts);
  const out: Drift[] = [];
  const listing = listNftTable(run, table);
  const want = wantedNftTags(rs);
  const where = `nft inet ${table}`;
  if (listing === null) {
    if (want.size) out.push({ where, what: `table missing (${[...want.values()].flat().length} rule(s) wanted)` });
  } else {
    const have = nftTags(listing);
    for (const [chain, tags] of want) {
      const got = have.get(chain);
      if (!got) { out.push({ where: `${where} ${chain}`, what: `chain missing (${tags.length} rule(s) wanted)` }); continue; }
      const missing = tags.filter((t) => !got.includes(t));
      const extra = got.filter((t) => !tags.includes(t));
      for (const t of missing) out.push({ where: `${where} ${chain}`, what: `missing rule #${t}: ${nftRuleText(rs, t)}` });
      for (const t of extra) out.push({ where: `${where} ${chain}`, what: `extra rule ${t.startsWith('untagged') ? t : `#${t}`}` });
      if (!missing.length && !extra.length && got.join() !== tags.join()) out.push({ where: `${where} ${chain}`, what: 'rules in another order or count than the config needs' });
    }
    for (const [chain, got] of have) if (!want.has(chain)) out.push({ where: `${where} ${chain}`, what: `chain not needed by this config (${got.length} rule(s))` });
    const ruleset = run('nft', ['list', 'ruleset']);
    if (ruleset.code === 0) out.push(...hostShadows(ruleset.stdout, table));
  }
  out.push(...checkRouting(rs, opts));
  return out;
}

function nftRuleText(rs: RuleSet, tag: string): string {
  const r = rs.iptables.find((x) => ruleTag(x.table, x.chain, x.args) === tag);
  return r ? r.comment : '?';
}

export type Backend = 'iptables' | 'nft';

/** Tables iptables-nft itself creates (families ip/ip6/arp/bridge with these names). */
const XT_TABLES = new Set(['filter', 'mangle', 'raw', 'nat', 'security', 'broute']);

/**
 * "The host uses nftables natively": sluice's own nft table is there, or there is no legacy
 * iptables in use (the iptables binary is the nf_tables variant and no legacy table is loaded) and
 * `nft list tables` shows a table iptables-nft did not make (family inet/netdev, or another name).
 * sluice's iptables chains already being there keeps iptables.
 */
export function detectBackend(run: Runner, prefix: string, hasIptChains: boolean): { backend: Backend; why: string } {
  const table = nftTableName(prefix);
  const tables = run('nft', ['list', 'tables']);
  if (tables.code !== 0) return { backend: 'iptables', why: `nft is not usable here (${tables.stderr.trim() || `exit ${tables.code}`})` };
  const list = [...tables.stdout.matchAll(/^table (\S+) (\S+)/gm)].map((m) => ({ family: m[1]!, name: m[2]! }));
  if (list.some((t) => t.family === 'inet' && t.name === table)) return { backend: 'nft', why: `table inet ${table} is already there` };
  if (hasIptChains) return { backend: 'iptables', why: `${prefix}-* chains are already in iptables` };
  const v = run('iptables', ['-V']).stdout;
  if (/legacy/.test(v)) return { backend: 'iptables', why: `iptables is the legacy backend (${v.trim()})` };
  // Root-only (0440): under systemd with capabilities only, unreadable; then the binary decides.
  let legacy = '';
  try { legacy = readFileSync('/proc/net/ip_tables_names', 'utf8').trim(); } catch { /* absent or unreadable */ }
  if (legacy) return { backend: 'iptables', why: `legacy iptables tables are loaded (${legacy.split('\n').join(', ')})` };
  const native = list.filter((t) => !(['ip', 'ip6', 'arp', 'bridge'].includes(t.family) && XT_TABLES.has(t.name)));
  if (native.length) return { backend: 'nft', why: `native nftables tables: ${native.map((t) => `${t.family} ${t.name}`).join(', ')}` };
  return { backend: 'iptables', why: 'no native nftables table (only what iptables-nft made, or none)' };
}

/** With `auto`: can the kernel load this ruleset? (A check-only transaction: nothing changes.) */
export function nftLoadable(run: Runner, rs: RuleSet, prefix: string): string | null {
  const text = renderNft(rs, nftTableName(prefix)).ruleset;
  if (!text) return null;
  try { nftLoad(run, text, true); return null; } catch (e) { return (e as Error).message; }
}
