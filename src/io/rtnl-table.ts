/**
 * The interface table kept current from rtnetlink events instead of re-reading /sys and /proc:
 * one dump at start, then the kernel tells us every link and IPv4 address that comes or goes
 * (RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR). An event is applied in O(1); nothing is read inside a batch
 * and an unknown ifindex is simply unknown (the table is current). A lost event (receive buffer
 * overflow) is followed by a fresh dump.
 */
import type { NativeRtnl, RtnlEvent } from './binding';
import type { InterfaceInfo } from './interfaces';

export class RtnlTable {
  readonly byIndex = new Map<number, InterfaceInfo>();
  readonly byName = new Map<string, InterfaceInfo>();
  events = 0;
  overflows = 0;

  constructor(private readonly rtnl: Pick<NativeRtnl, 'dump'>) {}

  /** Rebuilds the table from a dump (start-up, and after an overflow). */
  resync(): void {
    this.byIndex.clear();
    this.byName.clear();
    this.apply(this.rtnl.dump());
  }

  /** Applies events in order; returns true when something changed. */
  apply(events: RtnlEvent[]): boolean {
    let changed = false;
    for (const e of events) {
      this.events++;
      switch (e.type) {
        case 'overflow':
          this.overflows++;
          this.resync();
          return true;
        case 'link': {
          let info = this.byIndex.get(e.index);
          if (info && info.name !== e.name) { this.byName.delete(info.name); info.name = e.name; }
          if (!info) {
            info = { name: e.name, index: e.index, ipv4: 0, prefixLength: 0, addresses: [], mac: new Uint8Array(6) };
            this.byIndex.set(e.index, info);
          }
          if (e.mac.length === 6) info.mac = Uint8Array.from(e.mac);
          this.byName.set(e.name, info);
          changed = true;
          break;
        }
        case 'dellink': {
          const info = this.byIndex.get(e.index);
          if (info) { this.byIndex.delete(e.index); if (this.byName.get(info.name) === info) this.byName.delete(info.name); changed = true; }
          break;
        }
        case 'addr':
        case 'deladdr': {
          const info = this.byIndex.get(e.index);
          if (!info) break;
          const i = info.addresses.findIndex((a) => a.address === e.address && a.prefixLength === e.prefixLength);
          if (e.type === 'addr' && i < 0) info.addresses.push({ address: e.address, prefixLength: e.prefixLength });
          else if (e.type === 'deladdr' && i >= 0) info.addresses.splice(i, 1);
          else break;
          const first = info.addresses[0];
          info.ipv4 = first ? first.address : 0;
          info.prefixLength = first ? first.prefixLength : 0;
          changed = true;
          break;
        }
      }
    }
    return changed;
  }
}
