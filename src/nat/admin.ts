/**
 * Operator commands that change the NAT tables: `sa-delete` (the records of a host, server and/or
 * SPI) and `sa-flush` (every record); and the --host/--server/--spi filter they share with the
 * listing and the event stream. A deleted record goes as an idle one would (journal, learning books,
 * per-host counts): the next packet of that SA is treated as new (outbound) or unknown (inbound).
 */
import { ip4 } from '../packet/bytes';
import type { NatState } from './state';
import { SaKind } from './table';

export interface SaFilter { host: number; server: number; spiHi: number; spiLo: number; spi: boolean }

/** --host / --server (IPv4) and --spi (ESP: 8 hex digits; IKE initiator SPI: 16), any of them. */
export function saFilter(args: Record<string, unknown>): SaFilter {
  const f: SaFilter = { host: -1, server: -1, spiHi: 0, spiLo: 0, spi: false };
  if (typeof args.host === 'string') f.host = ip4(args.host);
  if (typeof args.server === 'string') f.server = ip4(args.server);
  if (args.spi !== undefined) {
    const text = String(args.spi).toLowerCase().replace(/^0x/, '');
    if (!/^[0-9a-f]{1,16}$/.test(text)) throw new Error(`bad SPI ${String(args.spi)}: hex, 8 digits (ESP) or 16 (IKE initiator SPI)`);
    const padded = text.padStart(16, '0');
    f.spiHi = parseInt(padded.slice(0, 8), 16) >>> 0;
    f.spiLo = parseInt(padded.slice(8), 16) >>> 0;
    f.spi = true;
  }
  return f;
}

/** Record id matches: host and server equal when given; an ESP record's SPI or an IKE record's ISPI. */
export function saMatches(s: NatState, id: number, f: SaFilter): boolean {
  const sas = s.sas;
  if (f.host >= 0 && sas.host[id] !== f.host) return false;
  if (f.server >= 0 && sas.server[id] !== f.server) return false;
  if (!f.spi) return true;
  if (sas.kind[id] === SaKind.IKE) return sas.a[id] === f.spiHi && sas.b[id] === f.spiLo;
  return f.spiHi === 0 && sas.a[id] === f.spiLo;
}

/** Removes the matching records (all of them for sa-flush); returns how many. */
export function saRemove(s: NatState, f: SaFilter | null): number {
  const sas = s.sas;
  let n = 0;
  for (let id = 0; id < sas.top; id++) {
    if (sas.kind[id] === SaKind.FREE || (f !== null && !saMatches(s, id, f))) continue;
    s.removeSa(id, 'deleted');
    n++;
  }
  return n;
}

export function saDelete(s: NatState, args: Record<string, unknown>): { deleted: number } {
  const f = saFilter(args);
  if (f.host < 0 && f.server < 0 && !f.spi) throw new Error('sa delete needs --host, --server and/or --spi (sa flush removes everything)');
  return { deleted: saRemove(s, f) };
}
