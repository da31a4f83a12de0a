/**
 * Structured logs (pino, JSON lines on stderr). One line per notable event — start, stop, reload,
 * a refused hold, a sampled audit — never one per packet.
 */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string): Logger {
  return pino({ level, base: { app: 'sluice' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}

/** Lets through at most `perInterval` calls per `intervalMs`, counting the rest (for audit lines). */
export class Sampler {
  private windowStart = 0;
  private used = 0;
  suppressed = 0;
  constructor(private readonly perInterval: number, private readonly intervalMs: number) {}

  allow(now: number): boolean {
    if (now - this.windowStart >= this.intervalMs) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used < this.perInterval) {
      this.used++;
      return true;
    }
    this.suppressed++;
    return false;
  }
}
