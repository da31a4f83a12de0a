/**
 * Structured logs (pino) on stderr: JSON lines (`log.format: json`, the default, for journald /
 * Loki / jq) or one readable line per event (`text`: time, level, message, then key=value fields).
 * One line per notable event — start, stop, every reload and what asked for it, a refused hold, a
 * sampled audit — never one per packet; `debug` adds a summary every 10 s and each SA event.
 */
import pino from 'pino';

export type Logger = pino.Logger;
export type LogFormat = 'json' | 'text';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** One pino JSON line as `2026-01-02T03:04:05.678Z INFO  message key=value ...` (logfmt-style values). */
export function formatLogLine(line: string): string {
  let o: Record<string, unknown>;
  try { o = JSON.parse(line) as Record<string, unknown>; } catch { return line; }
  const { time, level, msg, app: _app, pid: _pid, hostname: _host, err, ...rest } = o;
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${value(v)}`);
  const e = typeof err === 'object' && err !== null ? err as { message?: string; stack?: string } : null;
  if (err !== undefined) fields.push(`err=${value(e ? e.message ?? err : err)}`);
  const lv = (LEVELS[level as number] ?? String(level)).padEnd(5);
  return `${String(time)} ${lv} ${String(msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}\n${e?.stack ? `${e.stack}\n` : ''}`;
}

/** Writes to fd 2 synchronously: a log line is never lost to a crash right after it. */
export function createLogger(level: string, format: LogFormat = 'json', write: (s: string) => void = (s) => { process.stderr.write(s); }): Logger {
  const opts = { level, base: { app: 'sluice' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'text') return pino(opts, { write: (line: string) => write(formatLogLine(line)) });
  return pino(opts, pino.destination(2));
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
