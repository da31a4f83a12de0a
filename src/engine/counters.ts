/**
 * Named counters with numeric ids: stages register a name once at init and bump a Float64Array slot
 * per event, so the hot path does no string or Map work. Names are dotted (`nat.esp.unknown_spi`);
 * the part before the first dot is the owner (stage or engine) for `sluice stats`.
 */
export interface CounterInfo {
  name: string;
  help: string;
  /** True for reasons a packet was dropped (Decision.drop); false for plain events. */
  drop: boolean;
}

export class Counters {
  private values = new Float64Array(64);
  /** Drop verdicts the engine sent with this counter as the reason (for sluice_drops_total). */
  private dropValues = new Float64Array(64);
  private readonly infos: CounterInfo[] = [{ name: 'unspecified', help: 'drop without a stated reason', drop: true }];
  private readonly ids = new Map<string, number>();

  constructor() {
    this.ids.set('unspecified', 0);
  }

  /** Returns the id for name, registering it on first use (idempotent: reloads reuse ids). */
  register(name: string, help: string, drop = true): number {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    const id = this.infos.length;
    this.infos.push({ name, help, drop });
    this.ids.set(name, id);
    if (id >= this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
      const grownDrops = new Float64Array(grown.length);
      grownDrops.set(this.dropValues);
      this.dropValues = grownDrops;
    }
    return id;
  }

  add(id: number, n = 1): void {
    this.values[id] = (this.values[id] ?? 0) + n;
  }

  /** A drop verdict sent with reason id (the reason's own counter is bumped separately by add()). */
  addDrop(id: number): void {
    this.dropValues[id] = (this.dropValues[id] ?? 0) + 1;
  }

  /** Drop verdicts per reason, non-zero only. */
  dropSnapshot(): { name: string; value: number }[] {
    const out = [];
    for (let i = 0; i < this.infos.length; i++) {
      const v = this.dropValues[i]!;
      if (v !== 0) out.push({ name: this.infos[i]!.name, value: v });
    }
    return out;
  }

  get(name: string): number {
    const id = this.ids.get(name);
    return id === undefined ? 0 : this.values[id]!;
  }

  info(id: number): CounterInfo | undefined {
    return this.infos[id];
  }

  /** Every counter with a non-zero value (or all of them), as plain data. */
  snapshot(all = false): { name: string; help: string; drop: boolean; value: number }[] {
    const out = [];
    for (let i = 0; i < this.infos.length; i++) {
      const v = this.values[i]!;
      if (all || v !== 0) out.push({ ...this.infos[i]!, value: v });
    }
    return out;
  }
}
