/**
 * Interface names, indexes and IPv4 addresses, read from the kernel and cached.
 *
 * Stages resolve names to indexes once (at load/reload) and compare numbers per packet. A running
 * sluice tracks the table from rtnetlink events (track(): no file I/O ever, a new ppp0 or ipsec0 is
 * in the table when the kernel announces it). Without the addon (tools, tests) the table is re-read
 * from /sys when older than `maxAgeMs`, and when a stage asks about an index it has not seen (at
 * most once per index per maxAgeMs).
 */
import { networkInterfaces } from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import { ip4 } from '../packet/bytes';
import type { NativeBinding, NativeRtnl } from './binding';
import { RtnlTable } from './rtnl-table';

export interface InterfaceInfo {
  name: string;
  index: number;
  /** Primary IPv4 address as an unsigned 32-bit number, 0 when the interface has none. */
  ipv4: number;
  /** Prefix length of that address (32 on point-to-point peers configured as /32). */
  prefixLength: number;
  /** All IPv4 addresses with their prefix lengths. */
  addresses: { address: number; prefixLength: number }[];
  mac: Uint8Array;
}

export class Interfaces {
  private byIndex = new Map<number, InterfaceInfo>();
  private byName = new Map<string, InterfaceInfo>();
  private loadedAt = -Infinity;
  private listeners: (() => void)[] = [];

  constructor(
    private readonly sysNet = '/sys/class/net',
    private readonly maxAgeMs = 5000,
  ) {}

  /** A fixed table, for tests and tools that do not read the kernel. */
  static fromList(list: InterfaceInfo[]): Interfaces {
    const t = new Interfaces('', Infinity);
    for (const i of list) { t.byIndex.set(i.index, i); t.byName.set(i.name, i); }
    t.loadedAt = Infinity;
    return t;
  }

  private rtnl: NativeRtnl | null = null;
  private table: RtnlTable | null = null;

  /**
   * Keeps the table current from rtnetlink events (one dump now, then events). Listeners run once
   * per burst of events, between batches (the events arrive on the event loop like packets).
   */
  track(binding: Pick<NativeBinding, 'Rtnl'>): void {
    if (this.sysNet === '' || !binding.Rtnl || this.rtnl) return;
    let table: RtnlTable | null = null;
    const rtnl = new binding.Rtnl((events) => {
      if (table && table.apply(events)) this.adopt(table);
    });
    table = new RtnlTable(rtnl);
    table.resync();
    this.rtnl = rtnl;
    this.table = table;
    this.isTracking = true;
    this.adopt(table);
  }

  /** The kernel's route for dst (policy routing with `mark` applied); null without tracking or route. */
  route(dst: number, mark = 0): { ifindex: number; gateway: number; prefsrc: number; local: boolean } | null {
    return this.rtnl ? this.rtnl.route(dst >>> 0, mark >>> 0) : null;
  }

  /** Events applied and overflows (resyncs) since track(). */
  get trackStats(): { events: number; overflows: number } | null {
    return this.table ? { events: this.table.events, overflows: this.table.overflows } : null;
  }

  private adopt(t: RtnlTable): void {
    this.byIndex = t.byIndex;
    this.byName = t.byName;
    this.loadedAt = Infinity;
    for (const l of this.listeners) l();
  }

  stopTracking(): void {
    this.rtnl?.close();
    this.rtnl = null;
    this.table = null;
    this.isTracking = false;
    this.loadedAt = -Infinity;
  }

  refresh(now = Date.now()): void {
    if (this.sysNet === '') return;
    if (this.table) { this.table.resync(); this.adopt(this.table); return; }
    this.misses.clear();
    const os = networkInterfaces();
    const byIndex = new Map<number, InterfaceInfo>();
    const byName = new Map<string, InterfaceInfo>();
    let names: string[] = [];
    try { names = readdirSync(this.sysNet); } catch { names = Object.keys(os); }
    for (const name of names) {
      let index = 0;
      let mac = new Uint8Array(6);
      try {
        index = Number(readFileSync(`${this.sysNet}/${name}/ifindex`, 'utf8').trim());
        const macText = readFileSync(`${this.sysNet}/${name}/address`, 'utf8').trim();
        if (/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(macText)) {
          mac = Uint8Array.from(macText.split(':').map((h) => parseInt(h, 16)));
        }
      } catch {
        continue; // vanished between readdir and read
      }
      const addresses = (os[name] ?? [])
        .filter((a) => a.family === 'IPv4')
        .map((a) => ({ address: ip4(a.address), prefixLength: Number(a.cidr?.split('/')[1] ?? 32) }));
      const first = addresses[0];
      const info: InterfaceInfo = {
        name, index, mac, addresses,
        ipv4: first ? first.address : 0,
        prefixLength: first ? first.prefixLength : 0,
      };
      byIndex.set(index, info);
      byName.set(name, info);
    }
    this.byIndex = byIndex;
    this.byName = byName;
    this.loadedAt = now;
    for (const l of this.listeners) l();
  }

  /** Refreshes when the cache is older than maxAgeMs; cheap to call once per batch. */
  maybeRefresh(now = Date.now()): void {
    if (now - this.loadedAt > this.maxAgeMs) this.refresh(now);
  }

  /** Called after each refresh, e.g. to re-resolve names a stage compiled into indexes. Returns the unsubscribe. */
  onRefresh(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => { this.listeners = this.listeners.filter((l) => l !== listener); };
  }

  /** Listeners registered now (a reload must not grow this). */
  get listenerCount(): number { return this.listeners.length; }

  /**
   * An index not in the table: with event tracking the table is current, so it is simply unknown;
   * without, one re-read per index per maxAgeMs at most (an unknown index used to force a refresh
   * on every packet that carried it).
   */
  private miss(index: number): void {
    if (index <= 0 || this.sysNet === '' || this.tracking) return;
    const now = Date.now();
    const at = this.misses.get(index);
    if (at !== undefined && now - at < this.maxAgeMs) return;
    this.refresh(now); // clears the misses it answers
    if (this.byIndex.has(index)) return;
    if (this.misses.size > 4096) this.misses.clear();
    this.misses.set(index, now);
  }

  private readonly misses = new Map<number, number>();
  private isTracking = false;
  /** True when rtnetlink events keep the table current (see track()). */
  get tracking(): boolean { return this.isTracking; }

  indexOf(name: string): number {
    this.maybeRefresh();
    return this.byName.get(name)?.index ?? 0;
  }

  nameOf(index: number): string | undefined {
    if (!this.byIndex.has(index)) this.miss(index);
    return this.byIndex.get(index)?.name;
  }

  /** Primary IPv4 address of ifindex as uint32, 0 when unknown or none. */
  ipv4Of(index: number): number {
    if (!this.byIndex.has(index)) this.miss(index);
    return this.byIndex.get(index)?.ipv4 ?? 0;
  }

  info(index: number): InterfaceInfo | undefined {
    if (!this.byIndex.has(index)) this.miss(index);
    return this.byIndex.get(index);
  }

  all(): InterfaceInfo[] {
    this.maybeRefresh();
    return [...this.byIndex.values()];
  }
}
