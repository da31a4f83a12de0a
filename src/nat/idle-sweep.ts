/**
 * The NAT's idle sweep (run from NatStage.tick(), never inside a packet's processing): once a
 * second, a slice of the SA record space is scanned and records idle past their timeout
 * (timeouts.esp_idle_s / ike_idle_s; pinned ones never) are removed; once the cursor wraps, hosts
 * with no SA left and idle past timeouts.host_idle_s go too. A slice is bounded by a record count
 * and a time budget, so a mass expiry removes records over many ticks, not in one long pause.
 */
import type { NatConfig } from './config';
import { C } from './counters';
import { SliceBudget } from './slice';
import type { NatState } from './state';
import { F_PINNED, SaKind } from './table';

/** Records swept per tick for idle timeouts (bounded pause even at 1M SAs). */
const SWEEP_PER_TICK = 65536;
/**
 * ...and at most this long per tick (a mass expiry removes records slowly, not all at once); half
 * of it while a journal compaction runs, whose 1 ms slices take the loop turns in between (the sweep
 * runs inside a batch's tick: the two would add up in one gap between batches).
 */
const SWEEP_BUDGET_MS = 1;

export class IdleSweep {
  private cursor = 0;
  private lastSweep = 0;
  private readonly espIdleMs: number;
  private readonly ikeIdleMs: number;
  /** The sweep's time budget per tick; its longestMs is read (and reset) by bench/stall.bench.ts. */
  readonly slice = new SliceBudget();

  constructor(private readonly state: NatState, private readonly timeouts: NatConfig['timeouts']) {
    this.espIdleMs = timeouts.esp_idle_s * 1000;
    this.ikeIdleMs = timeouts.ike_idle_s * 1000;
  }

  /** Sweeps a slice if a second has passed since the last one (or the last ran out of budget). */
  run(now: number, compacting: boolean): void {
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    const s = this.state;
    const sas = s.sas;
    let i = this.cursor;
    const end = Math.min(sas.top, i + SWEEP_PER_TICK);
    const slice = this.slice;
    slice.start(compacting ? SWEEP_BUDGET_MS / 2 : SWEEP_BUDGET_MS);
    // A mass expiry's deletes go to the journal in one write per slice, not one per SA.
    s.journal?.beginBatch();
    try {
      for (; i < end; i++) {
        const k = sas.kind[i];
        if (k === SaKind.FREE || (sas.flags[i] & F_PINNED) !== 0) continue;
        const idle = k === SaKind.IKE ? this.ikeIdleMs : this.espIdleMs;
        if (now - sas.last[i] <= idle) continue;
        s.removeSa(i, 'expired');
        s.count(C.SA_IDLED);
        // The clock counts removals only: skipping a live record costs nanoseconds, a removal µs
        // (tens before the JIT has compiled it).
        if (slice.step()) { i++; break; }
      }
    } finally {
      s.journal?.endBatch();
    }
    slice.end();
    // Out of budget before the slice's end (a mass expiry): go on at the next tick, not in a second.
    if (i < end) this.lastSweep = 0;
    this.cursor = i >= sas.top ? 0 : i;
    if (this.cursor === 0) this.sweepHosts(now);
  }

  private sweepHosts(now: number): void {
    const hs = this.state.hosts;
    const idle = this.timeouts.host_idle_s * 1000;
    for (let h = 0; h < hs.top; h++) {
      if (hs.live[h] && hs.sas[h] === 0 && now - hs.last[h] > idle) {
        this.state.hostsPerPub[hs.pub[h]]--;
        hs.remove(h);
      }
    }
  }
}
