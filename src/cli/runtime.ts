/**
 * A running sluice: config → pipeline → engine → queues, plus the control socket, metrics, logs and
 * signals. Reload swaps the pipeline between batches and keeps every stage whose config section did
 * not change (so NAT state survives an unrelated reload); an invalid new config changes nothing.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Server as HttpServer } from 'node:http';
import { loadConfigOffThread } from '../config/offthread';
import type { Config } from '../config/schema';
import { Engine } from '../engine/engine';
import { Tracer } from '../engine/trace';
import type { Stage } from '../engine/stage';
import { Interfaces } from '../io/interfaces';
import { loadBinding } from '../io/binding';
import { Injector } from '../io/inject';
import { NfQueue } from '../io/nfqueue';
import { V_ACCEPT, V_DROP } from '../io/batch-layout';
import { Tun } from '../io/tun';
import { startControlServer, type ControlServer } from '../control/server';
import { privateDir } from '../state/private';
import { StoppingError, type ControlRequest } from '../control/protocol';
import { createLogger, type Logger } from '../obs/log';
import { metricsRegistry, serveMetrics, type MetricsSnapshot } from '../obs/metrics';
import { SystemdNotifier } from '../obs/sdnotify';
import { buildStages, buildStagesSliced } from './pipeline';
import { serveTrace } from './trace-serve';
import { DebugLog } from './debug-log';
import type { StatsReply } from './stats';
import { Ha } from '../ha';
import { WorkerPool } from './workers';
import { mergeStats } from './merge-stats';
import { numericFields, stageMetrics } from './stage-metrics';
import { NatStage } from '../nat/stage';

const VERSION = (require('../../../package.json') as { version: string }).version;

export class Runtime {
  private engine!: Engine;
  private tracer!: Tracer;
  private debugLog: DebugLog | null = null;
  private readonly queues: NfQueue[] = [];
  private readonly tuns: Tun[] = [];
  private injector: Injector | null = null;
  private control: ControlServer | null = null;
  private metrics: HttpServer | null = null;
  private readonly started = Date.now();
  private stagesByArea = new Map<string, Stage>();
  /** The stop under way: a second caller (a second dying worker, SIGTERM meanwhile) waits for it. */
  private stopping: Promise<void> | null = null;
  /** Why it stops (the first caller's reason): told to control clients whose request it ends. */
  private stopReason: string | null = null;
  private interfaces: Interfaces | null = null;
  /** NAT state replication and roles (ha: section; fixed at start, like the control socket). */
  private ha: Ha | null = null;
  /** workers: N > 1: the worker threads; this thread then owns the NAT state and the control socket. */
  private pool: WorkerPool | null = null;
  /** systemd's NOTIFY_SOCKET (Type=notify units), or null outside systemd. */
  private readonly notifier = SystemdNotifier.fromEnv();
  readonly log: Logger;

  constructor(private cfg: Config, private readonly file: string) {
    this.log = createLogger(cfg.log.level, cfg.log.format);
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    const interfaces = new Interfaces();
    this.interfaces = interfaces;
    try {
      interfaces.track(loadBinding()); // rtnetlink events: no /sys or /proc reads in the packet loop
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'rtnetlink tracking unavailable: interfaces re-read from /sys every 5 s');
      interfaces.refresh();
    }
    this.injector = new Injector();
    this.engine = new Engine({
      held: { max: cfg.held.max, timeoutMs: cfg.held.timeout_ms, defaultVerdict: cfg.held.default_verdict },
      interfaces,
      injector: this.injector,
      log: this.log,
    });
    this.tracer = new Tracer(this.engine, cfg.workers > 1 ? 'owner' : undefined);
    this.debugLog = new DebugLog(this.log, this.engine);
    try {
      this.checkPrivateDirs(cfg);
      if (cfg.ha) this.ha = new Ha(cfg.ha, this.log);
      this.installPipeline(cfg);
      await this.ha?.start();
      if (cfg.workers > 1) {
        this.pool = new WorkerPool(cfg, this.engine, this.sharedNat(), this.stageOptions().stateDir, (index, why) => this.workerDied(index, why));
        await this.pool.start();
      }
      for (const q of cfg.workers > 1 ? [] : cfg.queues) {
        let source = -1;
        const queue = NfQueue.open({
          queue: q.num, copyRange: Math.min(q.copy_range, 65531), maxLen: q.max_len, failOpen: q.fail_open, gso: q.gso,
          rcvbufBytes: q.rcvbuf, batchSize: q.batch,
          defaultVerdict: q.default_verdict === 'accept' ? V_ACCEPT : V_DROP, invalidVerdict: q.on_invalid === 'accept' ? V_ACCEPT : V_DROP,
        }, (batch) => this.engine.handleBatch(source, batch));
        source = this.engine.addSource(queue, q.num, { defaultVerdict: q.default_verdict, onInvalid: q.on_invalid });
        this.queues.push(queue);
      }
      // With workers every worker opens its own queue of each TUN device (worker-thread.ts).
      if (cfg.workers <= 1) cfg.tun.forEach((t, i) => {
        let source = -1;
        const tun = Tun.open({ name: t.name, batchSize: t.batch }, (batch) => this.engine.handleBatch(source, batch));
        source = this.engine.addSource(tun, t.source_id ?? 65536 + i,
          { defaultVerdict: t.default_verdict, onInvalid: t.on_invalid, releaseNeedsPayload: true });
        this.tuns.push(tun);
        interfaces.refresh();
      });
      this.control = await startControlServer(cfg.control.socket, (req) => this.onControl(req));
      if (cfg.metrics.listen) this.metrics = await serveMetrics(cfg.metrics.listen, this.registry());
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.guardProcess();
    this.debugLog?.start();
    this.control.server.on('error', (e) => this.log.error({ err: e.message }, 'control socket error'));
    this.metrics?.on('error', (e) => this.log.error({ err: e.message }, 'metrics endpoint error'));
    process.on('SIGHUP', () => {
      this.reload('SIGHUP').catch(() => {}); // logged by reload()
    });
    this.log.info({ config: this.file, queues: this.pool ? this.pool.workerQueues : cfg.queues.map((q) => q.num), workers: cfg.workers, tun: this.tuns.map((t) => t.name), stages: this.engine.pipeline.map((s) => s.name),
      control: cfg.control.socket }, 'sluice running');
    if (this.notifier) {
      const ok = this.notifier.ready(`running: queues ${cfg.queues.map((q) => q.num).join(', ') || 'none'}; stages ${this.engine.pipeline.map((s) => s.name).join(', ') || 'none'}`);
      this.log.info({ socket: this.notifier.socketName, watchdogUsec: this.notifier.watchdogUsec, ok, errno: this.notifier.lastError }, 'systemd notified: ready');
    }
  }

  /**
   * The directories sluice writes state and its socket into must be its user's alone (src/state/
   * private.ts): checked before any stage opens a file there. Throws UnsafePathError.
   */
  private checkPrivateDirs(cfg: Config): void {
    const stateDir = this.stageOptions().stateDir;
    privateDir(stateDir, 'state directory');
    const journal = cfg.nat?.journal.path;
    if (journal) privateDir(dirname(resolve(stateDir, journal)), 'NAT journal directory');
  }

  /**
   * One bad moment does not kill the gateway: an exception nobody caught (a housekeeping callback,
   * a socket event) is counted and logged, and the queues keep running. Verdicts are not at stake:
   * the batch path catches its own errors (engine.ts) and the addon sends every verdict.
   */
  private guardProcess(): void {
    const uncaught = this.engine.counters.register('process.uncaught_exception', 'exceptions nobody caught (a bug; logged, sluice kept running)', false);
    const rejected = this.engine.counters.register('process.unhandled_rejection', 'promise rejections nobody handled (a bug; logged, sluice kept running)', false);
    process.on('uncaughtException', (err) => {
      this.engine.counters.add(uncaught);
      this.log.error({ err }, 'uncaught exception; sluice keeps running');
    });
    process.on('unhandledRejection', (reason) => {
      this.engine.counters.add(rejected);
      this.log.error({ err: reason }, 'unhandled promise rejection; sluice keeps running');
    });
  }

  /** The running state_dir, not a reloaded one: a journal does not move under a running NAT. */
  private stageOptions() {
    return { log: this.log, stateDir: resolve(this.cfg.state_dir), sharedNat: this.cfg.workers > 1 };
  }

  /**
   * What this thread runs: everything (workers: 1), or only the NAT, as the owner of its state that
   * the worker threads forward to (workers: N > 1; they run the rest themselves).
   */
  private threadConfig(cfg: Config): Config {
    return cfg.workers > 1 ? { ...cfg, policy: undefined, steer: undefined, dhcp: undefined } : cfg;
  }

  private sharedNat() {
    const nat = this.engine.pipeline.find((s): s is NatStage => s instanceof NatStage);
    return nat ? nat.state.sharedMemory() : null;
  }

  /** A worker thread died: no half-working gateway. Everything stops (held packets decided), the process exits; logged once here. */
  private workerDied(index: number, why: string): void {
    this.log.fatal({ worker: index, why }, 'worker thread died: stopping sluice (the kernel applies each queue\'s fail_open setting)');
    void this.stop(`worker ${index} died (${why.split('\n')[0]})`).finally(() => process.exit(70));
  }

  /** Throws StoppingError once a stop has begun: a reload must not install anything into a stopping engine. */
  private notStopping(what: string): void {
    if (this.stopping) throw new StoppingError(`sluice is stopping: ${this.stopReason}; ${what}`);
  }

  private installPipeline(cfg: Config, prebuilt?: { key: string; stage: Stage }[]): void {
    const built = prebuilt ?? buildStages(this.threadConfig(cfg), this.stageOptions(), { cfg: this.threadConfig(this.cfg), stages: this.stagesByArea });
    const byArea = new Map(built.map(({ key, stage }) => [key, stage]));
    const kept = new Set(byArea.values());
    for (const old of this.stagesByArea.values()) if (!kept.has(old)) void old.close?.();
    this.stagesByArea = byArea;
    this.engine.setPipeline(built.map((b) => b.stage));
    this.debugLog?.pipeline(this.engine.pipeline);
    this.ha?.attach(built.map((b) => b.stage).find((st): st is NatStage => st instanceof NatStage) ?? null);
  }

  /** One reload at a time: each builds against the pipeline the previous one installed. */
  private reloading: Promise<unknown> = Promise.resolve();

  /**
   * Every reload is logged with what asked for it (SIGHUP, the control socket), refused ones too.
   * One a stop overtakes (a worker died meanwhile) fails with StoppingError: the stop's reason.
   */
  reload(trigger: 'SIGHUP' | 'control' = 'control'): Promise<{ config: string; stages: string[] }> {
    const run = this.reloading.then(() => this.reloadNotified(), () => this.reloadNotified()).catch((e: Error) => {
      // A stop overtook it (a worker died meanwhile): that is the answer, whichever step failed.
      if (this.stopping && !(e instanceof StoppingError)) this.notStopping('the reload did not complete');
      throw e;
    });
    this.reloading = run.catch(() => {});
    run.then((r) => this.log.info({ ...r, trigger }, 'reloaded'), (e: Error) => {
      if (e instanceof StoppingError) this.log.warn({ trigger, config: this.file }, 'reload not completed: sluice is stopping');
      else this.log.error({ err: e.message, trigger, config: this.file }, 'reload refused; running config kept');
    });
    return run;
  }

  /** systemd sees RELOADING=1 … READY=1 around every reload, failed ones too (the running config stays). */
  private async reloadNotified(): Promise<{ config: string; stages: string[] }> {
    this.notStopping('no reload now');
    this.notifier?.reloading();
    try {
      return await this.reloadNow();
    } finally {
      this.notifier?.notify({ READY: 1, STATUS: `running (reloaded ${new Date().toISOString()})` });
    }
  }

  private async reloadNow(): Promise<{ config: string; stages: string[] }> {
    // Parsed and validated in a worker: the packet loop runs meanwhile. Throws ConfigError: nothing changed.
    const next = await loadConfigOffThread(this.file);
    this.notStopping('the reload did not complete');
    const sourceText = (c: Config) => JSON.stringify([c.queues.map(({ capture: _c, ...q }) => q), c.tun, c.control, c.state_dir, c.workers, c.ha ?? null]);
    if (sourceText(next) !== sourceText(this.cfg)) this.log.warn({}, 'queue, tun, workers, control, state_dir or ha settings changed: they take effect at the next restart');
    const previous = this.cfg;
    // Unchanged sections keep their running stage (compared against this.cfg, so swap only after
    // building); changed ones compile in slices while batches keep flowing, then swap in one step.
    const built = await buildStagesSliced(this.threadConfig(next), this.stageOptions(), { cfg: this.threadConfig(this.cfg), stages: this.stagesByArea });
    this.notStopping('the reload did not complete');
    this.installPipeline(next, built);
    if (this.pool) await this.pool.reload({ ...next, workers: previous.workers }, this.sharedNat());
    this.cfg = { ...next, queues: previous.queues, tun: previous.tun, control: previous.control, state_dir: previous.state_dir, workers: previous.workers, ha: previous.ha };
    return { config: this.file, stages: this.engine.pipeline.map((s) => s.name) };
  }

  private async onControl(req: ControlRequest): Promise<unknown> {
    switch (req.cmd) {
      case 'stats': return this.pool ? this.statsOfWorkers(!!req.args?.all) : this.stats(!!req.args?.all);
      case 'reload': return this.reload('control');
      case 'trace':
        // With workers each worker traces its own batches; this thread (the NAT owner) the packets they forward.
        return serveTrace(this.engine, this.tracer, this.interfaces!, req.args ?? {}, this.pool ?? undefined);
      case 'ha': {
        if (!this.ha) throw new Error('HA is not configured (no ha: section in the config)');
        const op = req.name ?? 'status';
        if (op === 'promote') return this.ha.promote();
        if (op === 'demote') return this.ha.demote();
        if (op === 'status') return this.ha.status();
        throw new Error(`unknown ha command "${op}" (promote, demote, status)`);
      }
      case 'stage': {
        const stage = this.engine.pipeline.find((s) => s.name === req.stage);
        if (!stage) throw new Error(`no stage "${req.stage}" is running (running: ${this.engine.pipeline.map((s) => s.name).join(', ') || 'none'})`);
        if (!stage.command) throw new Error(`stage "${req.stage}" takes no commands`);
        return stage.command(req.name ?? '', req.args ?? {});
      }
      default: throw new Error(`unknown command "${req.cmd}" (stats, reload, trace, stage, ha)`);
    }
  }

  stats(all = false): StatsReply {
    const decisions = this.engine.stageCounts();
    const stages: StatsReply['stages'] = {};
    for (const s of this.engine.pipeline) stages[s.name] = { decisions: decisions[s.name] ?? {}, state: s.stats?.() };
    return {
      uptimeSeconds: (Date.now() - this.started) / 1000,
      config: this.file,
      queues: [
        ...this.queues.map((q, i) => ({ queue: this.cfg.queues[i]!.num, ...q.stats() })),
        ...this.tuns.map((t) => ({ tun: t.name, ...t.stats() })),
      ],
      held: this.engine.held.size,
      traces: this.tracer.subscribers,
      stages,
      ha: this.ha?.status(),
      counters: this.engine.counters.snapshot(all),
    };
  }

  /** stats() over the worker threads and this (NAT owner) thread (merge-stats.ts). */
  private async statsOfWorkers(all: boolean): Promise<StatsReply> {
    const workers = await this.pool!.stats();
    const m = this.merged(workers);
    return {
      uptimeSeconds: (Date.now() - this.started) / 1000,
      config: this.file,
      queues: [...m.queues, ...workers.flatMap((w) => w.tuns.map((t) => ({ worker: w.index, ...t })))],
      held: m.held,
      traces: this.tracer.subscribers,
      stages: m.stages,
      counters: all ? m.counters : m.counters.filter((c) => c.value !== 0),
    };
  }

  private merged(workers: Parameters<typeof mergeStats>[1]) {
    const nat = this.engine.pipeline.find((s) => s.name === 'nat');
    return mergeStats({ counters: this.engine.counters.snapshot(true), drops: this.engine.counters.dropSnapshot(),
      natState: nat?.stats?.() as Record<string, unknown> | undefined, held: this.engine.held.size }, workers);
  }

  private registry() {
    return metricsRegistry(() => this.metricsSnapshot(), { version: VERSION });
  }

  /** Plain numbers for one Prometheus scrape (src/obs/metrics.ts names and labels them). */
  metricsSnapshot(): MetricsSnapshot {
    if (this.pool) return this.workersMetricsSnapshot();
    return {
      counters: this.engine.counters.snapshot(true),
      drops: this.engine.counters.dropSnapshot(),
      decisions: this.engine.stageCounts(),
      ...stageMetrics(this.engine.pipeline.map((s) => [s.name, s.stats?.()])),
      queues: this.queues.map((q, i) => ({ queue: this.cfg.queues[i]!.num, stats: numericFields(q.stats()) })),
      tuns: this.tuns.map((t) => ({ tun: t.name, stats: numericFields(t.stats()) })),
      held: this.engine.held.size,
      stageGauges: [...this.engine.pipeline.flatMap((s) => s.gauges?.() ?? []), ...(this.ha?.gauges() ?? [])],
    };
  }

  /** metricsSnapshot() from the workers' last reported stats (refreshed every second) and this thread's NAT. */
  private workersMetricsSnapshot(): MetricsSnapshot {
    const m = this.merged(this.pool!.latest);
    return {
      counters: m.counters,
      drops: m.drops,
      decisions: m.decisions,
      ...stageMetrics(Object.entries(m.stages).map(([stage, s]) => [stage, s.state])),
      queues: m.queues.map(({ queue, worker: _w, ...q }) => ({ queue: queue as number, stats: numericFields(q) })),
      tuns: this.pool!.latest.flatMap((w) => w.tuns.map((t) => ({ tun: `${t.tun}#${w.index}`, stats: numericFields(t) }))),
      held: m.held,
      stageGauges: this.engine.pipeline.flatMap((s) => s.gauges?.() ?? []),
    };
  }

  /** Decides every held packet, closes the queues (kernel falls back to bypass / drop), removes the socket. reason: see stopReason. */
  stop(reason = 'asked to stop'): Promise<void> {
    this.stopReason ??= reason;
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  private async stopNow(): Promise<void> {
    this.notifier?.stopping();
    this.debugLog?.stop();
    await this.ha?.close();
    // Workers first: their held NAT packets may wait on the owner (this thread), which still answers.
    await this.pool?.stop();
    await this.engine?.close();
    for (const q of this.queues) q.close();
    for (const t of this.tuns) t.close();
    this.injector?.close();
    this.interfaces?.stopTracking();
    // Ends open control connections too (none keeps a stopping sluice alive); a request under way gets the reason.
    await this.control?.close(`sluice is stopping: ${this.stopReason}`);
    await new Promise<void>((r) => (this.metrics ? this.metrics.close(() => r()) : r()));
    this.log.info({ uptimeSeconds: (Date.now() - this.started) / 1000 }, 'sluice stopped');
    this.log.flush();
  }
}

export function ensureDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
}
