/**
 * Running the real `sluice` binary inside a lab namespace: write a config, start `sluice run`, wait
 * until its control socket answers, ask it for stats, stop or kill it.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { controlRequest } from '../control/client';
import type { Lab, Namespace, Proc } from './lab';
import { sleep } from './lab';

/** The compiled CLI entry point (dist/src/cli/main.js). */
export const SLUICE_MAIN = resolve(__dirname, '../cli/main.js');

export class SluiceProcess {
  proc!: Proc;
  constructor(readonly ns: Namespace, readonly configFile: string, readonly socket: string) {}

  static write(lab: Lab, name: string, yaml: string): string {
    const file = join(lab.dir, name);
    writeFileSync(file, yaml);
    return file;
  }

  /**
   * Starts sluice with `yaml` (its control.socket and state_dir are set to the lab directory unless
   * the text sets them: a lab never writes to the host's /var/lib/sluice) and waits for the socket.
   */
  static async start(lab: Lab, ns: Namespace, yaml: string, opts: { name?: string; logLevel?: string } = {}): Promise<SluiceProcess> {
    const name = opts.name ?? 'sluice';
    const socket = join(lab.dir, `${name}.sock`);
    let text = /^control:/m.test(yaml) ? yaml : `${yaml}\ncontrol:\n  socket: ${socket}\n`;
    if (!/^state_dir:/m.test(text)) text += `state_dir: ${lab.dir}\n`;
    const file = SluiceProcess.write(lab, `${name}.yaml`, text);
    const sp = new SluiceProcess(ns, file, socket);
    await sp.launch();
    return sp;
  }

  async launch(): Promise<void> {
    this.proc = this.ns.spawn([process.execPath, SLUICE_MAIN, 'run', '-c', this.configFile]);
    await this.waitReady();
  }

  private async waitReady(timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.proc.running) throw new Error(`sluice exited (${this.proc.exitCode}):\n${this.proc.output}`);
      try {
        await controlRequest(this.socket, { cmd: 'stats' }, 2000);
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`sluice did not answer on ${this.socket}:\n${this.proc.output}`);
        await sleep(50);
      }
    }
  }

  request(cmd: string, extra: Record<string, unknown> = {}): Promise<unknown> {
    return controlRequest(this.socket, { cmd, ...extra });
  }

  /** Counter value by dotted name (0 when absent). */
  async counter(name: string): Promise<number> {
    const s = await this.request('stats', { args: { all: true } }) as { counters: { name: string; value: number }[] };
    return s.counters.find((c) => c.name === name)?.value ?? 0;
  }

  async stats(): Promise<{ queues: Record<string, number>[]; counters: { name: string; value: number }[]; held: number }> {
    return await this.request('stats', { args: { all: true } }) as never;
  }

  async stop(): Promise<number | null> {
    return this.proc.stop('SIGTERM', 5000);
  }

  async kill9(): Promise<void> {
    await this.proc.stop('SIGKILL', 3000);
  }
}
