/**
 * Control commands of the NAT stage: `sa-list` (like `swanctl --list-sas`: host, public, server,
 * IKE SPIs, ESP SPIs in/out, packets, bytes, age, idle — plain JSON the CLI prints as a table),
 * `sa-pin` and `sa-unpin` (an operator, or a host's updown script, fixes an inbound SPI → host).
 */
import { ip4 as ipv4ToNumber, ipv4ToString as numberToIpv4 } from '../packet/bytes';
import { SaKind, F_PINNED, F_LEARNED, F_RESTORED } from './table';
import { C, refused } from './counters';
import type { NatState } from './state';
import { saDelete, saFilter, saMatches, saRemove } from './admin';
import { saEvents } from './events';
import { saListText, type ListAt } from './listjson';

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

/** One SA record as a listing row (the one place a row's fields are decided). */
export function rowOf(stage: NatStage, id: number, now: number, wall: number): SaListRow {
  const sas = stage.state.sas;
  const k = sas.kind[id];
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
  if (k === SaKind.IKE) row.spi_r = hex8(sas.rh[id]) + hex8(sas.rl[id]);
  return row;
}

function addRow(g: SaListEntry, kind: number, row: SaListRow): void {
  if (kind === SaKind.IKE) g.ike.push(row);
  else if (kind === SaKind.ESP_IN) g.esp_in.push(row);
  else g.esp_out.push(row);
}

function newGroup(stage: NatStage, id: number): SaListEntry {
  const sas = stage.state.sas;
  return { host: numberToIpv4(sas.host[id]), public: numberToIpv4(stage.state.publics[sas.pub[id]]), server: numberToIpv4(sas.server[id]), ike: [], esp_in: [], esp_out: [] };
}

/**
 * The whole listing at once as objects (small tables, `sa-list` without streaming, tests); `sluice
 * sa` streams it as text made straight from the tables (saListChunks, listjson.ts), which gives the
 * same JSON byte for byte.
 */
export function saList(stage: NatStage, args: Record<string, unknown>, at?: ListAt): SaListEntry[] {
  const s = stage.state;
  const sas = s.sas;
  const flt = saFilter(args);
  // Record ids by host, then by (server, public).
  const byHost = new Map<number, Map<number, number[]>>();
  for (let id = 0; id < sas.top; id++) {
    if (sas.kind[id] === SaKind.FREE) continue;
    const host = sas.host[id];
    if (!saMatches(s, id, flt)) continue;
    let m = byHost.get(host);
    if (!m) { m = new Map(); byHost.set(host, m); }
    const key = sas.server[id] * 256 + sas.pub[id];
    let ids = m.get(key);
    if (!ids) { ids = []; m.set(key, ids); }
    ids.push(id);
  }
  const now = at?.now ?? s.services?.now() ?? 0;
  const wall = at?.wall ?? Date.now();
  const out: SaListEntry[] = [];
  // Hosts in numeric order (at most limits.max_hosts of them: one typed-array sort).
  for (const host of Uint32Array.from(byHost.keys()).sort()) {
    const m = byHost.get(host)!;
    for (const key of [...m.keys()].sort((x, y) => x - y)) {
      const ids = m.get(key)!;
      const g = newGroup(stage, ids[0]!);
      for (const id of ids) addRow(g, sas.kind[id], rowOf(stage, id, now, wall));
      out.push(g);
    }
  }
  return out;
}

/** Longest run of listing work between two event-loop turns. */
const LIST_SLICE_MS = 0.5;

/**
 * The listing as JSON text in chunks (each a JSON array of host/server groups, ordered by host then
 * server), made in slices of ~LIST_SLICE_MS between event-loop turns so that listing 1M SAs never
 * holds the packet path. A chunk is a view into a reused buffer: the consumer is done with it
 * before it asks for the next (control/server.ts waits for the socket write). Records that change
 * meanwhile show as they are when their group is formatted.
 */
export async function* saListChunks(stage: NatStage, args: Record<string, unknown>, at?: ListAt): AsyncGenerator<Buffer> {
  const it = saListText(stage.state, saFilter(args), LIST_SLICE_MS, at);
  for (;;) {
    const r = it.next();
    if (r.done) return;
    if (r.value !== null) yield r.value;
    await new Promise<void>((res) => setImmediate(res));
  }
}

export function natCommand(stage: NatStage, name: string, args: Record<string, unknown>): unknown {
  const s = stage.state;
  switch (name) {
    case 'sa-list':
      // stream: the control socket sends the chunks as they come (see control/server.ts).
      return args.stream === true ? saListChunks(stage, args) : saList(stage, args);
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
    case 'sa-events': return saEvents(stage, args); // streamed (control/server.ts)
    case 'sa-delete': return saDelete(s, args);
    case 'sa-flush': return { deleted: saRemove(s, null) };
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
      throw new Error(`unknown NAT command ${name} (sa-list, sa-learning, sa-events, sa-delete, sa-flush, sa-pin, sa-unpin)`);
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

const SA_HEADER = ['HOST', 'PUBLIC', 'SERVER', 'SA', 'SPI', 'PACKETS', 'BYTES', 'AGE', 'IDLE', 'LEARNED', 'FLAGS'];
/**
 * Fixed column widths for a streamed table (addresses, SA kind, `16hex_i 16hex_r`, counters), so that
 * the first chunk can be printed before the last one is known.
 */
export const SA_STREAM_WIDTHS = [15, 15, 15, 7, 35, 10, 12, 8, 8, 20, 0];

function saRows(entries: SaListEntry[]): string[][] {
  const rows: string[][] = [];
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
  return rows;
}

function formatRows(rows: string[][], w: number[]): string {
  let out = '';
  for (const r of rows) out += `${r.map((x, c) => x.padEnd(w[c]!)).join('  ').trimEnd()}\n`;
  return out;
}

/** The header line of a streamed table. */
export function formatSaHeader(): string {
  return formatRows([SA_HEADER], SA_STREAM_WIDTHS);
}

/** One chunk of a streamed table (fixed widths, no header). */
export function formatSaChunk(entries: SaListEntry[]): string {
  return formatRows(saRows(entries), SA_STREAM_WIDTHS);
}

/** `sa-list` as a terminal table, one line per SA, widths fitted to the content. */
export function formatSaTable(entries: SaListEntry[]): string {
  if (entries.length === 0) return 'no mappings\n';
  const rows = [SA_HEADER, ...saRows(entries)];
  const w = SA_HEADER.map(() => 0);
  for (const r of rows) for (let c = 0; c < r.length; c++) if (r[c]!.length > w[c]!) w[c] = r[c]!.length;
  return formatRows(rows, w);
}
