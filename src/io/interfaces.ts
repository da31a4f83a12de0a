/**
 * Interface names, indexes and IPv4 addresses, read from the kernel and cached.
 *
 * Stages resolve names to indexes once (at load/reload) and compare numbers per packet. The table is
 * refreshed between batches when it is older than `maxAgeMs`, and at once when a stage asks about an
 * index it has not seen (an interface created after start-up, e.g. a new ppp0 or ipsec0).
 */
import { networkInterfaces } from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import { ip4 } from '../packet/bytes';

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

  refresh(now = Date.now()): void {
    if (this.sysNet === '') return;
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
  /** True when rtnetlink events keep the table current (see track()). */
  protected tracking = false;

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
