/**
 * systemd readiness and watchdog (sd_notify(3), the NOTIFY_SOCKET protocol): `READY=1` once the
 * queues are bound and the control socket answers, `RELOADING=1` … `READY=1` around a reload,
 * `STOPPING=1` at shutdown, and `WATCHDOG=1` every WATCHDOG_USEC/2 from a timer on the event loop,
 * so a loop stalled for longer than WatchdogSec gets the service restarted.
 *
 * Why not an npm package: Node has no AF_UNIX datagram socket; `sd-notify` links libsystemd (another
 * native build and a -dev package on the gateway), `unix-dgram` is a second native addon for one
 * sendto(). The protocol is one text datagram (documented and stable), so it is one mechanical
 * function in sluice's own addon (native/notify.cc). Outside systemd (no NOTIFY_SOCKET) every call
 * does nothing.
 */
import { loadBinding } from '../io/binding';

export type Send = (socketName: string, message: Uint8Array) => number;

export class SystemdNotifier {
  private timer: NodeJS.Timeout | null = null;
  /** errno of the last failed send (0: none failed). */
  lastError = 0;
  sent = 0;

  private constructor(readonly socketName: string, readonly watchdogUsec: number, private readonly send: Send) {}

  /**
   * From the environment systemd sets: NOTIFY_SOCKET, and WATCHDOG_USEC when WatchdogSec= is set
   * (ignored when WATCHDOG_PID names another process). Null outside systemd. The variables are
   * removed from process.env so child processes do not notify in sluice's name.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, send?: Send): SystemdNotifier | null {
    const socketName = env.NOTIFY_SOCKET;
    const usec = Number(env.WATCHDOG_USEC ?? 0);
    const pidOk = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
    if (env === process.env) for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) delete process.env[k];
    if (!socketName) return null;
    return new SystemdNotifier(socketName, Number.isFinite(usec) && usec > 0 && pidOk ? usec : 0, send ?? ((s, m) => loadBinding().notifySend(s, m)));
  }

  /** Sends KEY=VALUE lines; returns false (and keeps the errno) when the datagram was refused. */
  notify(fields: Record<string, string | number>): boolean {
    const text = Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`).join('\n');
    const e = this.send(this.socketName, Buffer.from(`${text}\n`));
    if (e !== 0) this.lastError = e;
    else this.sent++;
    return e === 0;
  }

  ready(status: string): boolean {
    const ok = this.notify({ READY: 1, STATUS: status, MAINPID: process.pid });
    this.startWatchdog();
    return ok;
  }

  reloading(): boolean {
    // MONOTONIC_USEC: systemd 253+ matches a reload to its request by it; older ones ignore it.
    return this.notify({ RELOADING: 1, MONOTONIC_USEC: (process.hrtime.bigint() / 1000n).toString(), STATUS: 'reloading' });
  }

  stopping(): boolean {
    this.stopWatchdog();
    return this.notify({ STOPPING: 1, STATUS: 'stopping' });
  }

  /** Pings every WATCHDOG_USEC/2 (the interval sd_watchdog_enabled(3) recommends). */
  private startWatchdog(): void {
    if (this.watchdogUsec <= 0 || this.timer) return;
    const ms = Math.max(1, Math.floor(this.watchdogUsec / 2000));
    this.notify({ WATCHDOG: 1 });
    this.timer = setInterval(() => this.notify({ WATCHDOG: 1 }), ms);
    this.timer.unref();
  }

  stopWatchdog(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
