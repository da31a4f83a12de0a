/**
 * The namespace lab: network namespaces, veth pairs and bridges whose names are unique to the run,
 * commands and background processes inside them, and a cleanup that always runs (namespaces
 * deleted, our processes killed by PID) — on test end, on failure, and on process exit.
 *
 *   const lab = await Lab.create('nat');           // t.after(() => lab.cleanup())
 *   const [lan, gw] = [lab.ns('lan'), lab.ns('gw')];
 *   await lab.link(lan, 'eth0', gw, 'lan0');       // veth pair, one end in each namespace
 *   await lan.sh('ip addr add 192.168.1.2/24 dev eth0');
 *   const p = gw.spawn(['tcpdump', '-ni', 'lan0']); await p.waitFor(/listening/);
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** For `test(name, { skip: labSkipReason() }, ...)`: a printed reason, or false when the lab can run. */
export function labSkipReason(): string | false {
  if (!isRoot()) return 'needs root (network namespaces, iptables); CI runs as root';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 `ip netns` is not available (run scripts/setup.sh)';
  }
  return false;
}

export interface ExecResult { stdout: string; stderr: string; code: number }

function run(cmd: string[], timeoutMs: number, allowFail: boolean, input?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd[0]!, cmd.slice(1), { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      if (err && !allowFail) {
        reject(new Error(`command failed (${code}): ${cmd.join(' ')}\n${stderr}${stdout}`));
        return;
      }
      resolve({ stdout, stderr, code });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** A background process inside a namespace, killed by PID at cleanup. */
export class Proc {
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess, readonly cmd: string[]) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { this.stdout += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
      this.exitCode = code ?? (signal ? 128 : null);
      resolve(this.exitCode);
    }));
  }

  get pid(): number { return this.child.pid ?? -1; }

  get output(): string { return this.stdout + this.stderr; }

  get running(): boolean { return this.exitCode === null && this.child.exitCode === null; }

  /** Resolves when stdout+stderr match; rejects with the output so far on timeout or exit. */
  async waitFor(pattern: RegExp, timeoutMs = 15000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.match(pattern);
      if (m) return m;
      if (!this.running) throw new Error(`${this.cmd.join(' ')} exited (${this.exitCode}) before ${pattern}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${pattern} from ${this.cmd.join(' ')}:\n${this.output}`);
      await sleep(25);
    }
  }

  /** Sends a signal and waits (bounded) for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<number | null> {
    if (!this.running) return this.exitCode;
    try { process.kill(this.pid, signal); } catch { /* already gone */ }
    const timer = sleep(timeoutMs).then(() => 'timeout' as const);
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
      await Promise.race([this.exited, sleep(2000)]);
    }
    return this.exitCode;
  }
}

export class Namespace {
  constructor(readonly lab: Lab, readonly name: string) {}

  /** Runs argv inside the namespace; rejects on non-zero exit unless allowFail. */
  exec(argv: string[], opts: { timeoutMs?: number; allowFail?: boolean; input?: string } = {}): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', this.name, ...argv], opts.timeoutMs ?? 30000, opts.allowFail ?? false, opts.input);
  }

  /** Runs a shell script inside the namespace and returns its stdout. */
  async sh(script: string, opts: { timeoutMs?: number; allowFail?: boolean } = {}): Promise<string> {
    return (await this.exec(['sh', '-ec', script], opts)).stdout;
  }

  /** Starts a background process inside the namespace (tracked, killed at cleanup). */
  spawn(argv: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Proc {
    const child = spawn('ip', ['netns', 'exec', this.name, ...argv], {
      stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd,
    });
    const proc = new Proc(child, argv);
    this.lab.track(proc);
    return proc;
  }

  /** Interface counters from /sys (rx/tx packets), read inside the namespace. */
  async counters(dev: string): Promise<{ rx: number; tx: number }> {
    const out = await this.sh(`cat /sys/class/net/${dev}/statistics/rx_packets /sys/class/net/${dev}/statistics/tx_packets`);
    const [rx, tx] = out.trim().split('\n').map(Number);
    return { rx: rx ?? 0, tx: tx ?? 0 };
  }
}

const liveLabs = new Set<Lab>();
let exitHookInstalled = false;

export class Lab {
  readonly id: string;
  /** A private scratch directory for configs, pcaps and sockets; removed at cleanup. */
  readonly dir: string;
  private readonly namespaces: Namespace[] = [];
  private readonly procs: Proc[] = [];
  private cleaned = false;

  private constructor(readonly prefix: string) {
    // Short: namespace names show up in error messages; unique: tests of other runs may share the machine.
    this.id = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
    this.dir = mkdtempSync(join(tmpdir(), `sluice-${prefix}-`));
    liveLabs.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => { for (const lab of liveLabs) lab.cleanupSync(); });
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        process.on(sig, () => { for (const lab of liveLabs) lab.cleanupSync(); process.exit(130); });
      }
    }
  }

  static async create(prefix: string): Promise<Lab> {
    return new Lab(prefix);
  }

  /** Creates a namespace named `sl-<prefix>-<role>-<id>` with loopback up. */
  ns(role: string): Namespace {
    const name = `sl-${this.prefix}-${role}-${this.id}`;
    execFileSync('ip', ['netns', 'add', name]);
    const ns = new Namespace(this, name);
    this.namespaces.push(ns);
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** A veth pair created directly inside the two namespaces (no name clash in the root namespace), both up. */
  async link(a: Namespace, aDev: string, b: Namespace, bDev: string, opts: { mtu?: number } = {}): Promise<void> {
    await run(['ip', '-n', a.name, 'link', 'add', aDev, 'type', 'veth', 'peer', 'name', bDev, 'netns', b.name], 10000, false);
    for (const [ns, dev] of [[a, aDev], [b, bDev]] as const) {
      if (opts.mtu) await run(['ip', '-n', ns.name, 'link', 'set', dev, 'mtu', String(opts.mtu)], 10000, false);
      await run(['ip', '-n', ns.name, 'link', 'set', dev, 'up'], 10000, false);
    }
  }

  /** A bridge inside ns with the given member devices (already in ns), all up. */
  async bridge(ns: Namespace, name: string, members: string[]): Promise<void> {
    await ns.sh(`ip link add ${name} type bridge && ip link set ${name} up`);
    for (const m of members) await ns.sh(`ip link set ${m} master ${name} && ip link set ${m} up`);
  }

  track(proc: Proc): void {
    this.procs.push(proc);
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  read(name: string): string {
    return readFileSync(this.path(name), 'utf8');
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    await Promise.all(this.procs.map((p) => p.stop('SIGTERM', 3000)));
    this.cleanupSync();
  }

  /** Synchronous so it can run from an exit handler. */
  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    liveLabs.delete(this);
    for (const p of this.procs) {
      if (p.running) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (const ns of this.namespaces) {
      // Processes we did not spawn directly (daemons that forked) still live inside our namespaces;
      // they are ours too, so end them by PID before deleting the namespace.
      try {
        const pids = execFileSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
        for (const pid of pids) try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      } catch { /* namespace already gone */ }
      try { execFileSync('ip', ['netns', 'del', ns.name], { stdio: 'ignore' }); } catch { /* already gone */ }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until it returns a truthy value or the time is up. */
export async function until<T>(fn: () => Promise<T> | T, timeoutMs = 10000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(50);
  }
}
