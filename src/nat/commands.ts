/**
 * Control commands of the NAT stage: `sa-list` (like `swanctl --list-sas`: host, public, server,
 * IKE SPIs, ESP SPIs in/out, packets, bytes, age, idle — plain JSON the CLI prints as a table),
 * `sa-pin` and `sa-unpin` (an operator, or a host's updown script, fixes an inbound SPI → host).
 */
import { ip4 as ipv4ToNumber, ipv4ToString as numberToIpv4 } from '../packet/bytes';
import { SaKind, F_PINNED, F_LEARNED, F_RESTORED } from './table';
import { C, refused } from './counters';
import type { NatState } from './state';

/** What the commands read: the stage's state (NatStage passes itself; no import back into stage.ts). */
type NatStage = { readonly state: NatState };

export interface SaListRow {
  spi: string;
  /** IKE only: responder SPI (16 hex digits, zeros until learned). */
  spi_r?: string;
  packets: number;
  bytes: number;
  age_s: number;
  idle_s: number;
  flags: string[];
  /**
   * Learning state: inbound ESP/IKE learned by `window`, `reply`, `elimination` or `outbound` (the
   * host spoke first), else `seen` (cleartext) or `pinned`; ESP also says whether the other direction
   * of its CHILD_SA is known (`paired`), which keeps both alive on one-way traffic.
   */
  learned?: string;
  paired?: boolean;
}

export interface SaListEntry {
  host: string;
  public: string;
  server: string;
  ike: SaListRow[];
  esp_in: SaListRow[];
  esp_out: SaListRow[];
}

const VIA_NAMES = ['seen', 'window', 'reply', 'elimination', 'outbound'];
const TURN_NAMES = ['none', 'window', 'probe', 'clearing'];

const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');

function parseSpi(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v.startsWith('0x') ? v : `0x${v}`) : NaN;
  if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) throw new Error(`bad SPI ${String(v)}: give 1..0xffffffff (hex)`);
  return n >>> 0;
}

function parseAddr(v: unknown, what: string): number {
  if (typeof v !== 'string') throw new Error(`missing --${what}`);
  return ipv4ToNumber(v);
}

export function saList(stage: NatStage, args: Record<string, unknown>): SaListEntry[] {
  const s = stage.state;
  const sas = s.sas;
  const now = stage.state.services?.now() ?? 0;
  const wall = Date.now();
  const hostF = typeof args.host === 'string' ? ipv4ToNumber(args.host) : -1;
  const serverF = typeof args.server === 'string' ? ipv4ToNumber(args.server) : -1;
  const groups = new Map<string, SaListEntry>();
  for (let id = 0; id < sas.top; id++) {
    const k = sas.kind[id];
    if (k === SaKind.FREE) continue;
    if (hostF >= 0 && sas.host[id] !== hostF) continue;
    if (serverF >= 0 && sas.server[id] !== serverF) continue;
    const key = `${sas.host[id]} ${sas.server[id]} ${sas.pub[id]}`;
    let g = groups.get(key);
    if (!g) {
      g = { host: numberToIpv4(sas.host[id]), public: numberToIpv4(s.publics[sas.pub[id]]), server: numberToIpv4(sas.server[id]), ike: [], esp_in: [], esp_out: [] };
      groups.set(key, g);
    }
    const f = sas.flags[id];
    const flags: string[] = [];
    if (f & F_PINNED) flags.push('pinned');
    if (f & F_LEARNED) flags.push('learned');
    if (f & F_RESTORED) flags.push('restored');
    const row: SaListRow = {
      spi: k === SaKind.IKE ? hex8(sas.a[id]) + hex8(sas.b[id]) : hex8(sas.a[id]),
      packets: sas.pkts[id], bytes: sas.bytes[id],
      age_s: Math.max(0, Math.round((wall - sas.created[id]) / 1000)),
      idle_s: Math.max(0, Math.round((now - sas.last[id]) / 1000)),
      flags,
    };
    if (k !== SaKind.ESP_OUT) row.learned = VIA_NAMES[sas.via[id]] ?? 'seen';
    if (k !== SaKind.IKE) row.paired = sas.pair[id] >= 0;
    if (k === SaKind.IKE) { row.spi_r = hex8(sas.rh[id]) + hex8(sas.rl[id]); g.ike.push(row); }
    else if (k === SaKind.ESP_IN) g.esp_in.push(row);
    else g.esp_out.push(row);
  }
  return [...groups.values()].sort((x, y) => (x.host < y.host ? -1 : x.host > y.host ? 1 : x.server < y.server ? -1 : 1));
}

export function natCommand(stage: NatStage, name: string, args: Record<string, unknown>): unknown {
  const s = stage.state;
  switch (name) {
    case 'sa-list':
      return saList(stage, args);
    case 'sa-learning':
    case 'sa-windows': {
      const out: LearningEntry[] = [];
      // Per (public, server): the running learning turn, held packets, hosts still owed SAs, ambiguous SPIs.
      const now = s.services?.now() ?? 0;
      const L = s.learning;
      for (let p = 0; p < L.peerServer.length; p++) {
        const t = L.turnOf(p, now);
        const owed = L.peerLinks[p].filter((l) => L.linkDebt[l] > 0)
          .map((l) => ({ host: numberToIpv4(L.linkHost[l]), owed: L.linkDebt[l] }));
        out.push({
          public: numberToIpv4(s.publics[L.peerPub[p]]), server: numberToIpv4(L.peerServer[p]),
          turn: t === 0 ? null : { kind: TURN_NAMES[t], host: numberToIpv4(L.linkHost[L.turnLink[p]]), ends_in_ms: Math.max(0, L.turnDeadline[p] - now) },
          held: L.heldOf(p), owed,
          pending: L.pendingOf(p).map((e) => ({
            spi: e.kind === SaKind.IKE ? hex8(e.a) + hex8(e.b) : hex8(e.a), kind: e.kind === SaKind.IKE ? 'ike' : 'esp',
            packets: e.packets, age_ms: now - e.first,
          })),
        });
      }
      return out;
    }
    case 'sa-pin': {
      const host = parseAddr(args.host, 'host');
      const server = parseAddr(args.server, 'server');
      const spi = parseSpi(args.spi);
      const now = s.services?.now() ?? 0;
      let h = s.hosts.find(host);
      if (typeof args.public === 'string') {
        const pub = s.pubIndexOf(ipv4ToNumber(args.public));
        if (pub < 0) throw new Error(`${args.public} is not a configured public address`);
        if (h >= 0 && s.hosts.pub[h] !== pub) throw new Error(`host ${args.host} is bound to ${numberToIpv4(s.publics[s.hosts.pub[h]])}`);
        if (h < 0) h = s.bindHost(host, pub, now);
      } else if (h < 0) {
        h = s.host(host, now);
      }
      if (h < 0) throw new Error('host limit reached');
      const pub = s.hosts.pub[h];
      const old = s.sas.find(SaKind.ESP_IN, pub, server, spi, 0);
      if (old >= 0) {
        if (s.sas.host[old] !== host) throw new Error(`SPI ${hex8(spi)} from ${args.server} is mapped to ${numberToIpv4(s.sas.host[old])}; unpin or wait for it to idle out`);
        s.sas.flags[old] |= F_PINNED;
        s.journalPut(old);
      } else {
        const id = s.addSa(SaKind.ESP_IN, pub, server, h, spi, 0, F_PINNED, now, true);
        if (id < 0) throw new Error(`refused: ${refused(id) === C.SA_CAP ? 'max_sas' : refused(id) === C.HOST_SA_CAP ? 'max_sas_per_host' : 'max_hosts_per_server'} reached`);
        s.learning.pinned(id, now);
      }
      s.count(C.PINNED);
      return { pinned: { host: args.host, server: args.server, spi: hex8(spi), public: numberToIpv4(s.publics[pub]) } };
    }
    case 'sa-unpin': {
      const server = parseAddr(args.server, 'server');
      const spi = parseSpi(args.spi);
      let removed = 0;
      for (let pub = 0; pub < s.publics.length; pub++) {
        if (typeof args.public === 'string' && s.publics[pub] !== ipv4ToNumber(args.public)) continue;
        const id = s.sas.find(SaKind.ESP_IN, pub, server, spi, 0);
        if (id < 0) continue;
        if (typeof args.host === 'string' && s.sas.host[id] !== ipv4ToNumber(args.host)) continue;
        s.removeSa(id);
        removed++;
      }
      if (removed === 0) throw new Error(`no mapping for SPI ${hex8(spi)} from ${String(args.server)}`);
      return { removed };
    }
    default:
      throw new Error(`unknown NAT command ${name} (sa-list, sa-learning, sa-pin, sa-unpin)`);
  }
}

/** One (public, server) in `sa-learning`. */
export interface LearningEntry {
  public: string;
  server: string;
  turn: { kind: string; host: string; ends_in_ms: number } | null;
  held: number;
  owed: { host: string; owed: number }[];
  pending: { spi: string; kind: string; packets: number; age_ms: number }[];
}

/** `sa-learning` for a terminal: one line per (public, server) with anything going on. */
export function formatLearning(entries: LearningEntry[]): string {
  const busy = entries.filter((e) => e.turn || e.held || e.owed.length || e.pending.length);
  if (busy.length === 0) return `nothing to learn (${entries.length} public/server pairs known)\n`;
  return busy.map((e) => {
    const parts = [`${e.public} -> ${e.server}:`];
    parts.push(e.turn ? `${e.turn.kind} for ${e.turn.host} (${e.turn.ends_in_ms} ms left)` : 'no turn');
    parts.push(`held ${e.held}`);
    parts.push(`owed ${e.owed.length ? e.owed.map((o) => `${o.host}×${o.owed}`).join(' ') : '-'}`);
    parts.push(`ambiguous ${e.pending.length ? e.pending.map((p) => `${p.kind} ${p.spi} (${p.packets} pkts, ${p.age_ms} ms)`).join(' ') : '-'}`);
    return parts.join('  ');
  }).join('\n') + '\n';
}

/** `sa-list` as a terminal table, one line per SA (what `sluice sa` prints without --json). */
export function formatSaTable(entries: SaListEntry[]): string {
  if (entries.length === 0) return 'no mappings\n';
  const rows: string[][] = [['HOST', 'PUBLIC', 'SERVER', 'SA', 'SPI', 'PACKETS', 'BYTES', 'AGE', 'IDLE', 'LEARNED', 'FLAGS']];
  for (const e of entries) {
    const add = (kind: string, r: SaListRow): void => {
      rows.push([e.host, e.public, e.server, kind, r.spi_r !== undefined ? `${r.spi}_i ${r.spi_r}_r` : r.spi,
        String(r.packets), String(r.bytes), `${r.age_s}s`, `${r.idle_s}s`,
        [r.learned, r.paired === undefined ? undefined : r.paired ? 'paired' : 'unpaired'].filter(Boolean).join(','), r.flags.join(',')]);
    };
    for (const r of e.ike) add('IKE', r);
    for (const r of e.esp_in) add('ESP in', r);
    for (const r of e.esp_out) add('ESP out', r);
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return `${rows.map((r) => r.map((x, c) => x.padEnd(w[c])).join('  ').trimEnd()).join('\n')}\n`;
}
