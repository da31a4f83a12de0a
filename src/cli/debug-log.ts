/**
 * What `log.level: debug` adds (nothing runs at other levels): every 10 s a summary of what the
 * engine did since the last one (packets, batches, verdicts, held, drops by reason, traces
 * running), and one line per NAT SA event (new, learned, paired, expired, deleted, replaced; the
 * stream `sluice sa --events` shows), re-attached to the new NAT stage after a reload.
 */
import type { Engine } from '../engine/engine';
import type { Stage } from '../engine/stage';
import type { Logger } from '../obs/log';
import type { SaEvent } from '../nat/events';

export class DebugLog {
  private timer: NodeJS.Timeout | null = null;
  private last = new Map<string, number>();
  private events: AsyncGenerator<{ events: SaEvent[] }> | null = null;
  private nat: Stage | null = null;

  constructor(private readonly log: Logger, private readonly engine: Engine, private readonly periodMs = 10000) {}

  get enabled(): boolean { return this.log.isLevelEnabled('debug'); }

  start(): void {
    if (!this.enabled || this.timer) return;
    this.summary(); // the baseline
    this.timer = setInterval(() => this.summary(), this.periodMs);
    this.timer.unref();
  }

  /** After every pipeline change: follow the NAT stage now running. */
  pipeline(stages: readonly Stage[]): void {
    if (!this.enabled) return;
    const nat = stages.find((s) => s.name === 'nat') ?? null;
    if (nat === this.nat) return;
    void this.events?.return(undefined);
    this.events = null;
    this.nat = nat;
    if (!nat?.command) return;
    const it = nat.command('sa-events', {}) as AsyncGenerator<{ events: SaEvent[] }>;
    this.events = it;
    void (async () => {
      for await (const chunk of it) for (const { event, ...e } of chunk.events) this.log.debug(e, `SA ${event}`);
    })().catch((err: unknown) => this.log.warn({ err }, 'SA event log stopped'));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    void this.events?.return(undefined);
    this.events = null;
  }

  private summary(): void {
    const now = new Map(this.engine.counters.snapshot(true).map((c) => [c.name, c.value]));
    const first = this.last.size === 0;
    const last = this.last;
    const delta = (name: string): number => (now.get(name) ?? 0) - (last.get(name) ?? 0);
    const drops: Record<string, number> = {};
    for (const d of this.engine.counters.dropSnapshot()) {
      const key = `drop:${d.name}`;
      const n = d.value - (last.get(key) ?? 0);
      if (n > 0) drops[d.name] = n;
      now.set(key, d.value);
    }
    this.last = now;
    if (first) return;
    this.log.debug({
      seconds: this.periodMs / 1000, packets: delta('engine.packets'), batches: delta('engine.batches'), accepted: delta('engine.accepted'),
      dropped: delta('engine.dropped'), held_now: this.engine.held.size, released: delta('engine.released'), marked: delta('engine.marked'),
      rewritten: delta('engine.rewritten'), drops, tracing: this.engine.tracer !== null,
    }, 'engine summary');
  }
}
