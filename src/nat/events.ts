/**
 * `sluice sa --events`: SA records as they appear and go, like `conntrack -E` — new (seen in
 * cleartext or pinned), learned (an inbound SPI placed by learning), paired (both directions of a
 * CHILD_SA known), expired (idle timeout), deleted (operator), replaced (the server reused an SPI
 * for another host). The state calls back only on those changes, and only while someone listens.
 * Bounded like `sluice trace`: a listener that does not read keeps at most `max` events queued;
 * later ones are counted as dropped.
 */
import { ipv4ToString } from '../packet/bytes';
import type { NatState, SaEventType } from './state';
import { SaKind } from './table';
import { rowOf } from './commands';
import { saFilter, saMatches, type SaFilter } from './admin';

export interface SaEvent {
  time: string;
  event: SaEventType;
  sa: 'ike' | 'esp_in' | 'esp_out';
  host: string;
  public: string;
  server: string;
  spi: string;
  learned?: string;
  paired?: boolean;
  flags?: string;
}

const KINDS: Record<number, SaEvent['sa']> = { [SaKind.IKE]: 'ike', [SaKind.ESP_IN]: 'esp_in', [SaKind.ESP_OUT]: 'esp_out' };

class Listener {
  readonly events: SaEvent[] = [];
  dropped = 0;
  waiter: (() => void) | null = null;
  constructor(readonly filter: SaFilter, readonly max: number) {}
}

type Stage = { readonly state: NatState };

/** One hub per NAT state. */
const hubs = new WeakMap<NatState, Hub>();

class Hub {
  readonly listeners = new Set<Listener>();
  constructor(private readonly stage: Stage) {}

  add(l: Listener): void {
    this.listeners.add(l);
    this.stage.state.onSaEvent = (t, id) => this.emit(t, id);
  }

  remove(l: Listener): void {
    this.listeners.delete(l);
    if (this.listeners.size === 0) this.stage.state.onSaEvent = null;
  }

  /** Runs inside packet processing (an SA appears): a fault here is counted as a lost event, never thrown. */
  private emit(type: SaEventType, id: number): void {
    const s = this.stage.state;
    let ev: SaEvent | null = null;
    for (const l of this.listeners) {
      try {
        if (!saMatches(s, id, l.filter)) continue;
        if (l.events.length >= l.max) { l.dropped++; continue; }
        ev ??= this.describe(type, id);
        l.events.push(ev);
      } catch {
        l.dropped++;
        continue;
      }
      const w = l.waiter;
      l.waiter = null;
      w?.();
    }
  }

  private describe(event: SaEventType, id: number): SaEvent {
    const s = this.stage.state;
    const sas = s.sas;
    const r = rowOf(this.stage, id, s.services?.now() ?? 0, Date.now());
    const e: SaEvent = { time: new Date().toISOString(), event, sa: KINDS[sas.kind[id]] ?? 'esp_out', host: ipv4ToString(sas.host[id]),
      public: ipv4ToString(s.publics[sas.pub[id]]), server: ipv4ToString(sas.server[id]), spi: r.spi };
    if (r.learned !== undefined) e.learned = r.learned;
    if (r.paired !== undefined) e.paired = r.paired;
    if (r.flags.length) e.flags = r.flags.join(',');
    return e;
  }
}

/** The `sa-events` stream: `{events, dropped}` chunks, an empty one every heartbeatMs while quiet. */
export async function* saEvents(stage: Stage, args: Record<string, unknown>, heartbeatMs = 1000): AsyncGenerator<{ events: SaEvent[]; dropped: number }> {
  const filter = saFilter(args);
  let hub = hubs.get(stage.state);
  if (!hub) { hub = new Hub(stage); hubs.set(stage.state, hub); }
  const l = new Listener(filter, 4096);
  hub.add(l);
  try {
    for (;;) {
      if (l.events.length === 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => { l.waiter = null; resolve(); }, heartbeatMs);
          l.waiter = () => { clearTimeout(t); resolve(); };
        });
      }
      yield { events: l.events.splice(0, 512), dropped: l.dropped };
    }
  } finally {
    hub.remove(l);
  }
}

/** One event as a terminal line (conntrack -E style). */
export function formatSaEvent(e: SaEvent): string {
  const extra = [e.learned ? `learned=${e.learned}` : '', e.paired !== undefined ? (e.paired ? 'paired' : 'unpaired') : '', e.flags ? `flags=${e.flags}` : '']
    .filter(Boolean).join(' ');
  return `${e.time.slice(11, 23)} [${e.event.toUpperCase()}] ${e.sa} host=${e.host} public=${e.public} server=${e.server} spi=${e.spi}${extra ? ` ${extra}` : ''}`;
}
