/**
 * Translates a normalized selector into iptables match arguments for capture rules. The result is a
 * SUPERSET of what the selector matches (fields iptables cannot express — DHCP type, IKE exchange,
 * interface globs other than a trailing `*`, long lists — are left out), which is what a capture rule
 * needs: sluice then decides exactly. Lists become several rules (cross product, capped).
 */
import { HOOKS, type NormFields, type NormSelector, type Range } from './selector';

const MAX_RULES = 32;
const CHAINS = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'];
const HAS_IN = new Set([0, 1, 2]);   // -i is valid in PREROUTING, INPUT, FORWARD
const HAS_OUT = new Set([2, 3, 4]);  // -o is valid in FORWARD, OUTPUT, POSTROUTING

function ifArg(g: string): string | null {
  if (!/[*?]/.test(g)) return g;
  if (/^[^*?]+\*$/.test(g)) return `${g.slice(0, -1)}+`;
  return null; // other globs: iptables cannot say it, leave the interface out (wider)
}

const rng = ([a, b]: Range): string => (a === b ? String(a) : `${a}:${b}`);

/** Alternatives for one field: each is an argv fragment; [] alone means "no constraint". */
type Alts = string[][];

function portAlts(flag: 'sport' | 'dport', rs: Range[] | undefined, neg: boolean): Alts | null {
  if (!rs) return null;
  if (rs.length === 1) return [[...(neg ? ['!'] : []), `--${flag}`, rng(rs[0]!)]];
  const weight = rs.reduce((n, [a, b]) => n + (a === b ? 1 : 2), 0);
  if (weight > 15) return null;
  return [['-m', 'multiport', ...(neg ? ['!'] : []), `--${flag}s`, rs.map(rng).join(',')]];
}

/** The chains a selector needs capturing in, given the hooks to use when it names none. */
export function chainsFor(sel: NormSelector, defaultHooks: number): number[] {
  let mask = sel.pos.hook ?? defaultHooks;
  if (sel.not.hook !== undefined) mask &= ~sel.not.hook;
  return [0, 1, 2, 3, 4].filter((h) => (mask >> h) & 1);
}

/** argv lists (without -A CHAIN and target) capturing a superset of sel's packets in hook h. */
export function iptMatches(sel: NormSelector, hook: number): string[][] {
  const p: NormFields = sel.pos, n: NormFields = sel.not;
  // Interfaces a hook cannot have: a positive selector never matches there; a negated one always does.
  if ((p.in && !HAS_IN.has(hook)) || (p.out && !HAS_OUT.has(hook))) return [];
  const fields: Alts[] = [];
  const add = (a: Alts | null): void => { if (a && a.length) fields.push(a); };

  if (p.in && HAS_IN.has(hook)) { const xs = p.in.map(ifArg); if (!xs.includes(null)) add(xs.map((x) => ['-i', x!])); }
  if (n.in && HAS_IN.has(hook) && n.in.length === 1 && ifArg(n.in[0]!)) add([['!', '-i', ifArg(n.in[0]!)!]]);
  if (p.out && HAS_OUT.has(hook)) { const xs = p.out.map(ifArg); if (!xs.includes(null)) add(xs.map((x) => ['-o', x!])); }
  if (n.out && HAS_OUT.has(hook) && n.out.length === 1 && ifArg(n.out[0]!)) add([['!', '-o', ifArg(n.out[0]!)!]]);
  if (p.srcSpec && !p.srcSpec.includes('0.0.0.0/0')) add(p.srcSpec.map((s) => ['-s', s]));
  if (n.srcSpec && n.srcSpec.length === 1) add([['!', '-s', n.srcSpec[0]!]]);
  if (p.dstSpec && !p.dstSpec.includes('0.0.0.0/0')) add(p.dstSpec.map((s) => ['-d', s]));
  if (n.dstSpec && n.dstSpec.length === 1) add([['!', '-d', n.dstSpec[0]!]]);
  if (p.mark) add([['-m', 'mark', '--mark', `0x${p.mark.value.toString(16)}/0x${p.mark.mask.toString(16)}`]]);
  else if (n.mark) add([['-m', 'mark', '!', '--mark', `0x${n.mark.value.toString(16)}/0x${n.mark.mask.toString(16)}`]]);
  if (p.length && p.length.length === 1) add([['-m', 'length', '--length', rng(p.length[0]!)]]);

  // Protocol, then what hangs off it (ports need -p tcp/udp; icmp type needs -p icmp; SPI needs -p esp).
  // Positive ports imply TCP/UDP. Negated ports do not (`not: {dport: 22}` also matches ICMP), so they
  // are written only when the rule's own protocols all have ports; otherwise left out (wider).
  const ports = p.sport || p.dport;
  let protos: number[] | null = p.proto ? [...p.proto] : null;
  if (ports) protos = (protos ?? [6, 17]).filter((x) => x === 6 || x === 17);
  const negPorts = protos !== null && protos.every((x) => x === 6 || x === 17);
  if (p.icmp_type && !ports) protos = (protos ?? [1]).filter((x) => x === 1);
  if (protos && protos.length === 0) return []; // ports on a protocol without ports: never matches
  const protoAlts: Alts = [];
  for (const pr of protos ?? [-1]) {
    const base = pr < 0 ? [] : ['-p', String(pr)];
    const extra: string[] = [];
    if (pr === 6 || pr === 17) {
      for (const [flag, rs, neg] of [['sport', p.sport, false], ['dport', p.dport, false], ['sport', negPorts ? n.sport : undefined, true], ['dport', negPorts ? n.dport : undefined, true]] as const) {
        const a = portAlts(flag, rs, neg);
        if (a) extra.push(...a[0]!);
      }
    }
    if (pr === 1 && p.icmp_type && p.icmp_type.length === 1) extra.push('--icmp-type', String(p.icmp_type[0]));
    if (pr === 50 && p.esp_spi && p.esp_spi.length === 1) extra.push('-m', 'esp', '--espspi', rng(p.esp_spi[0]!));
    protoAlts.push([...base, ...extra]);
  }
  if (!(protoAlts.length === 1 && protoAlts[0]!.length === 0)) fields.push(protoAlts);
  if (!protos && n.proto && n.proto.length === 1) fields.push([['!', '-p', String(n.proto[0])]]);

  // Cross product, widening (dropping the longest list) until it is small enough.
  for (;;) {
    const count = fields.reduce((c, f) => c * f.length, 1);
    if (count <= MAX_RULES) break;
    let widest = 0;
    fields.forEach((f, i) => { if (f.length > fields[widest]!.length) widest = i; });
    fields.splice(widest, 1);
  }
  let out: string[][] = [[]];
  for (const f of fields) out = out.flatMap((o) => f.map((alt) => [...o, ...alt]));
  return out;
}

export function chainName(hook: number): string { return CHAINS[hook]!; }
export function hookBits(names: readonly string[]): number { return names.reduce((m, h) => m | (1 << HOOKS.indexOf(h as typeof HOOKS[number])), 0); }
