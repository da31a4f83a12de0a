/**
 * Renders the same RuleSet the iptables renderer takes as one native nftables table, `table inet
 * sluice`: each (iptables table, built-in chain) pair becomes a base chain at that table's hook
 * priority (raw -300, mangle -150, filter 0; mangle OUTPUT is a `route` chain so a mark set there
 * reroutes, as in iptables). Every iptables argument a stage emits is translated here; one this
 * module does not know is an error, not a silently wider or narrower rule.
 *
 * The iptables rules are IPv4 only, so every nft rule starts with `meta nfproto ipv4`: the inet
 * table must not capture IPv6 that the iptables output leaves alone.
 *
 * The document replaces the table atomically (`table inet sluice` + `delete table inet sluice`
 * + the table, one `nft -f` transaction); removal is `nft delete table inet sluice`.
 */
import { ruleTag } from './ipt-state';
import type { IptRule, IptTable, RuleSet } from './types';

export const NFT_TABLE = 'sluice';

const HOOKS: Record<string, string> = {
  PREROUTING: 'prerouting', INPUT: 'input', FORWARD: 'forward', OUTPUT: 'output', POSTROUTING: 'postrouting',
};

/** iptables table → nft chain type and priority for a hook (what iptables-nft registers). */
function chainHead(table: IptTable, hook: string): string {
  switch (table) {
    case 'raw': return `type filter hook ${hook} priority raw; policy accept;`;
    case 'mangle': return `type ${hook === 'output' ? 'route' : 'filter'} hook ${hook} priority mangle; policy accept;`;
    case 'filter': return `type filter hook ${hook} priority filter; policy accept;`;
    case 'nat': {
      const prio = hook === 'prerouting' || hook === 'output' ? 'dstnat' : 'srcnat';
      return `type nat hook ${hook} priority ${prio}; policy accept;`;
    }
  }
}

const PROTO_NAMES: Record<string, string> = { '1': 'icmp', '6': 'tcp', '17': 'udp', '50': 'esp', '51': 'ah', '47': 'gre', '132': 'sctp' };

function protoName(p: string): string {
  return PROTO_NAMES[p] ?? p.toLowerCase();
}

/** `eth+` (iptables' trailing wildcard) → `eth*`. */
function ifName(n: string): string {
  return JSON.stringify(n.endsWith('+') ? `${n.slice(0, -1)}*` : n);
}

/** iptables range `a:b` → nft `a-b`; lists `a,b:c` → `{ a, b-c }`. */
function numbers(v: string): string {
  const items = v.split(',').map((x) => x.replace(':', '-'));
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
}

/**
 * nft comments are at most 128 bytes and cannot hold a double quote. The rule's tag (the same as in
 * the iptables output, src/rules/ipt-state.ts) ends it, so `--check` can compare rules by tag.
 */
function nftComment(r: IptRule): string {
  let t = `sluice: ${r.comment.replace(/^sluice:?\s*/, '')}`.replace(/["\\\n]/g, "'");
  while (Buffer.byteLength(t) > 127 - 10) t = t.slice(0, -1);
  return JSON.stringify(`${t} #${ruleTag(r.table, r.chain, r.args)}`);
}

export class NftTranslateError extends Error {}

/** One iptables rule's arguments as an nft rule body (matches, then the statement, then the comment). */
export function nftRule(r: IptRule): string {
  const a = r.args;
  const out: string[] = ['meta nfproto ipv4'];
  let proto: string | null = null;
  let neg = false;
  let i = 0;
  const next = (what: string): string => {
    const v = a[++i];
    if (v === undefined) throw new NftTranslateError(`${a.join(' ')}: ${what} needs a value`);
    return v;
  };
  const op = (): string => (neg ? '!= ' : '');
  const needProto = (flag: string): string => {
    if (!proto) throw new NftTranslateError(`${a.join(' ')}: ${flag} without -p`);
    return proto;
  };
  for (; i < a.length; i++) {
    const t = a[i]!;
    if (t === '!') { neg = true; continue; }
    switch (t) {
      case '-i': out.push(`iifname ${op()}${ifName(next('-i'))}`); break;
      case '-o': out.push(`oifname ${op()}${ifName(next('-o'))}`); break;
      case '-s': out.push(`ip saddr ${op()}${next('-s')}`); break;
      case '-d': out.push(`ip daddr ${op()}${next('-d')}`); break;
      case '-p': proto = protoName(next('-p')); out.push(`meta l4proto ${op()}${proto}`); break;
      case '--sport': case '--sports': out.push(`${needProto(t)} sport ${op()}${numbers(next(t))}`); break;
      case '--dport': case '--dports': out.push(`${needProto(t)} dport ${op()}${numbers(next(t))}`); break;
      case '--icmp-type': out.push(`icmp type ${op()}${next(t)}`); break;
      case '--espspi': out.push(`esp spi ${op()}${numbers(next(t))}`); break;
      case '--mark': {
        const [value, mask] = next(t).split('/');
        out.push(mask ? `meta mark & ${mask} ${neg ? '!=' : '=='} ${value}` : `meta mark ${op()}${value}`);
        break;
      }
      case '--length': out.push(`ip length ${op()}${numbers(next(t))}`); break;
      case '--ctstate': out.push(`ct state ${op()}${next(t).toLowerCase()}`); break;
      case '-m': {
        const m = next('-m');
        if (!['multiport', 'mark', 'length', 'conntrack', 'esp', 'comment'].includes(m)) throw new NftTranslateError(`${a.join(' ')}: no nft translation for -m ${m}`);
        if (m === 'comment') { i++; if (a[i] === '--comment') i++; }
        continue;
      }
      case '-j': {
        out.push(target(a.slice(i + 1), a));
        i = a.length;
        continue;
      }
      default: throw new NftTranslateError(`${a.join(' ')}: no nft translation for ${t}`);
    }
    neg = false;
  }
  if (neg) throw new NftTranslateError(`${a.join(' ')}: a trailing !`);
  return `${out.join(' ')} comment ${nftComment(r)}`;
}

/** `-j TARGET [options]` → the nft statement. */
function target(t: string[], all: string[]): string {
  const [name, ...opts] = t;
  const opt = (flag: string): string | undefined => {
    const k = opts.indexOf(flag);
    return k < 0 ? undefined : opts[k + 1];
  };
  switch (name) {
    case 'ACCEPT': return 'accept';
    case 'DROP': return 'drop';
    case 'RETURN': return 'return';
    case 'CT':
      if (opts.length === 1 && opts[0] === '--notrack') return 'notrack';
      break;
    case 'MARK': {
      // --set-xmark value/mask: zero the mask's bits, then XOR value (iptables semantics).
      if (opts.length !== 2 || opts[0] !== '--set-xmark') break;
      const [value, mask = '0xffffffff'] = opts[1]!.split('/');
      const keep = (~Number(mask) >>> 0).toString(16);
      return `meta mark set meta mark and 0x${keep} xor ${value}`;
    }
    case 'NFQUEUE': {
      const known = new Set(['--queue-num', '--queue-balance', '--queue-bypass', '--queue-cpu-fanout']);
      for (let k = 0; k < opts.length; k++) {
        if (!known.has(opts[k]!)) throw new NftTranslateError(`${all.join(' ')}: no nft translation for NFQUEUE ${opts[k]}`);
        if (opts[k] === '--queue-num' || opts[k] === '--queue-balance') k++;
      }
      const balance = opt('--queue-balance');
      // iptables spreads a balance by a hash of the addresses unless --queue-cpu-fanout picks by CPU
      // (nft: `fanout`); the CPU option means nothing without a range.
      const fanout = opts.includes('--queue-cpu-fanout');
      if (fanout && !balance) throw new NftTranslateError(`${all.join(' ')}: --queue-cpu-fanout needs --queue-balance`);
      const num = balance ? balance.replace(':', '-') : (opt('--queue-num') ?? '0');
      const flags = [...(opts.includes('--queue-bypass') ? ['bypass'] : []), ...(fanout ? ['fanout'] : [])];
      return `queue ${flags.length ? `flags ${flags.join(',')} ` : ''}to ${num}`;
    }
  }
  throw new NftTranslateError(`${all.join(' ')}: no nft translation for -j ${t.join(' ')}`);
}

/** The chain a rule lands in: `mangle_forward`, `raw_prerouting`... */
export function nftChainName(r: IptRule): string {
  return `${r.table}_${(HOOKS[r.chain] ?? r.chain).toLowerCase()}`;
}

const TABLE_ORDER: readonly IptTable[] = ['raw', 'mangle', 'nat', 'filter'];

export interface RenderedNft {
  /** `nft -f` input: replaces `table inet sluice` atomically (empty string: nothing to add). */
  ruleset: string;
  /** `nft -f` input that removes it. */
  remove: string;
  /** The ruleset plus the policy routing lines as comments, for `sluice rules --nft`. */
  text: string;
}

export function renderNft(rs: RuleSet, table: string = NFT_TABLE): RenderedNft {
  const chains = new Map<string, { table: IptTable; hook: string; rules: IptRule[] }>();
  for (const t of TABLE_ORDER) {
    for (const r of rs.iptables.filter((x) => x.table === t)) {
      const hook = HOOKS[r.chain];
      if (!hook) throw new NftTranslateError(`chain ${r.chain} in table ${r.table}: not a built-in chain`);
      const name = nftChainName(r);
      let c = chains.get(name);
      if (!c) chains.set(name, (c = { table: t, hook, rules: [] }));
      c.rules.push(r);
    }
  }
  const lines: string[] = [];
  if (chains.size > 0) {
    // Declaring then deleting makes the replacement idempotent and atomic (one transaction).
    lines.push(`table inet ${table}`, `delete table inet ${table}`, `table inet ${table} {`);
    let first = true;
    for (const [name, c] of chains) {
      if (!first) lines.push('');
      first = false;
      lines.push(`\tchain ${name} {`, `\t\t${chainHead(c.table, c.hook)}`);
      for (const r of c.rules) lines.push(`\t\t# ${r.comment.replace(/\n/g, ' ')}`, `\t\t${nftRule(r)}`);
      lines.push('\t}');
    }
    lines.push('}');
  }
  const ruleset = lines.length ? `${lines.join('\n')}\n` : '';
  const remove = `table inet ${table}\ndelete table inet ${table}\n`;
  const doc: string[] = ['#!/usr/sbin/nft -f', `# Kernel rules this config needs, as nftables: apply with \`nft -f FILE\` (replaces table inet ${table}`,
    `# atomically), remove with \`nft delete table inet ${table}\`. IPv4 only, like the iptables output.`];
  if (ruleset) doc.push('', ruleset.trimEnd());
  else doc.push('# (no netfilter rules: this config needs none)');
  const ipLines = [...rs.ipRules.map((r) => ({ c: r.comment, l: `ip rule add ${r.args.join(' ')}` })),
    ...rs.ipRoutes.map((r) => ({ c: r.comment, l: `ip route add ${r.args.join(' ')}` }))];
  if (ipLines.length) {
    doc.push('', '# ---- policy routing (not nftables: run these too, or `sluice rules --apply`) ----');
    for (const x of ipLines) doc.push(`# ${x.c}`, `#   ${x.l}`);
  }
  return { ruleset, remove, text: `${doc.join('\n')}\n` };
}
