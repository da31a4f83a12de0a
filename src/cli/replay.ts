/**
 * `sluice replay -c FILE capture.pcap`: the configured pipeline over a capture, without the kernel
 * (src/io/fake.ts stands in for the addon), printing the `sluice trace` line of every packet. Flow:
 * config → stages (NAT journal off: nothing on disk changes) → engine → one fake queue per configured
 * queue → each IP packet of the capture as a one-packet batch on the queue and hook it would reach
 * (--queue/--hook, or chosen per packet, see HELP) → its trace line; verdicts a held packet gets
 * later are printed when they happen, those still held at the end get their timeout verdict.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { Engine } from '../engine/engine';
import { HOOK_FORWARD, HOOK_POSTROUTING, HOOK_PREROUTING } from '../engine/stage';
import { Tracer } from '../engine/trace';
import { compileFilter, FilterError } from '../engine/trace-filter';
import { V_ACCEPT, V_DROP } from '../io/batch-layout';
import { FakeBinding } from '../io/fake';
import { Interfaces } from '../io/interfaces';
import { NfQueue } from '../io/nfqueue';
import { ip4 } from '../packet/bytes';
import { CaptureError, readCapture, stripLink } from '../packet/pcap';
import { formatTraceLine, traceJson, type TraceLineJson } from '../obs/trace-format';
import { HOOKS } from '../select/selector';
import { parse, UsageError } from './args';
import { buildStages } from './pipeline';

const HELP = `Usage: sluice replay -c FILE [options] CAPTURE

Runs the pipeline of config FILE over the IP packets of a pcap/pcapng capture, as if they had been
queued, and prints one \`sluice trace\` line per packet (stages, rule/mapping/scope, verdict, mark,
rewrite). Nothing touches the kernel or the NAT journal: check a config against real traffic
before deploying it. Packets run in file order at the speed of the replay (capture timestamps are
not waited for: learning windows and idle timeouts see the replay's own clock). Packets go through
the configured NFQUEUE queues (tun: sources are not replayed); DHCP answers and relayed packets
are counted as injections that failed (no kernel), the packet's own line says "answered".

Where each packet enters (a capture does not say):
  --queue N     queue number (default: nat.queue when NAT is on, else the first queue)
  --hook H      prerouting|input|forward|output|postrouting, or auto (default): with NAT, packets to a
                nat.public address enter at prerouting and all others at postrouting; without, forward
  --in NAME     input interface name the stages see (default none)
  --out NAME    output interface name the stages see (default none)
  --filter EXPR print only packets matching (all packets still run; see sluice trace --help)
  --json        one JSON object per packet
  --layers      with --json: every layer as \`sluice decode\` prints it ("layers")
`;

export async function replayCommand(argv: string[], out: (l: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const a = parse(argv, {
    config: { type: 'string', short: 'c' }, queue: { type: 'string' }, hook: { type: 'string' }, in: { type: 'string' },
    out: { type: 'string' }, filter: { type: 'string', short: 'f' }, json: { type: 'boolean' }, layers: { type: 'boolean' },
  }, HELP, true);
  if (!a) return 0;
  const v = a.values;
  if (!v.config) throw new UsageError(`replay needs -c FILE\n\n${HELP}`);
  if (a.positionals.length !== 1) throw new UsageError(`replay needs one capture file\n\n${HELP}`);
  const hook = v.hook ?? 'auto';
  if (hook !== 'auto' && !(HOOKS as readonly string[]).includes(hook)) throw new UsageError(`--hook: auto or one of ${HOOKS.join(', ')}`);
  const file = a.positionals[0]!;
  const data = readFileSync(file);
  const cfg = await loadConfig(v.config);
  if (cfg.queues.length === 0) throw new UsageError(`${v.config} configures no queues: nothing would see a packet`);
  const queueNum = v.queue !== undefined ? Number(v.queue) : (cfg.nat?.enabled ? cfg.nat.queue : cfg.queues[0]!.num);
  if (!cfg.queues.some((q) => q.num === queueNum)) throw new UsageError(`queue ${queueNum} is not in the config's queues (${cfg.queues.map((q) => q.num).join(', ')})`);
  if (v.layers && !v.json) throw new UsageError('--layers goes with --json');
  try { compileFilter(v.filter ?? '', Interfaces.fromList([])); } catch (e) { if (e instanceof FilterError) throw new UsageError(e.message); throw e; }
  const replay = new Replay(cfg, v.in, v.out, queueNum, hook, v.filter ?? '', !!v.layers, (l) => out(v.json ? JSON.stringify(l) : `#${l.n} ${formatTraceLine(l)}`),
    (r) => out(v.json ? JSON.stringify(r) : `  #${r.released} (held) released: ${[r.verdict, r.mark_out ? `mark ${r.mark_out}` : '', r.rewritten ? 'rewritten' : ''].filter(Boolean).join(' ')}`));
  try {
    for (const r of readCapture(data)) {
      const li = stripLink(r.linktype, r.data);
      if (li.error) { out(`#${r.index + 1} skipped: ${li.error}`); continue; }
      replay.feed(r.index + 1, r.data.subarray(li.ipOffset));
    }
  } catch (e) {
    if (e instanceof CaptureError) { process.stderr.write(`sluice: ${file}: ${e.message}\n`); await replay.close(); return 1; }
    throw e;
  }
  await replay.close();
  return 0;
}

/** The engine, fake queues and tracer of one replay. */
class Replay {
  private readonly fake = new FakeBinding();
  private readonly engine: Engine;
  private readonly tracer: Tracer;
  private readonly sub;
  private readonly sources = new Map<number, { queue: NfQueue; source: number }>();
  private readonly names;
  private readonly indev: number;
  private readonly outdev: number;
  private readonly publics: Set<number>;
  private readonly stateDir = mkdtempSync(join(tmpdir(), 'sluice-replay-'));
  private readonly printed = new Map<number, number>();

  constructor(cfg: Config, inName: string | undefined, outName: string | undefined, private readonly queueNum: number,
    private readonly hook: string, filter: string, private readonly layers: boolean, private readonly print: (l: TraceLineJson & { n: number }) => void,
    private readonly printRelease: (r: { released: number; verdict: string; mark_out?: string; rewritten?: true }) => void) {
    const list = [inName, outName].filter((n): n is string => !!n);
    const interfaces = Interfaces.fromList([...new Set(list)].map((name, i) => ({ name, index: i + 1, ipv4: 0, prefixLength: 0, addresses: [], mac: new Uint8Array(6) })));
    this.indev = inName ? interfaces.indexOf(inName) : 0;
    this.outdev = outName ? interfaces.indexOf(outName) : 0;
    this.publics = new Set((cfg.nat?.enabled ? cfg.nat.public : []).map((p) => ip4(p)));
    // The journal stays off: a replay must not write (or read) the running gateway's NAT state.
    const replayCfg: Config = cfg.nat ? { ...cfg, nat: { ...cfg.nat, journal: { ...cfg.nat.journal, path: null } } } : cfg;
    const quiet = { info: () => {}, warn: () => {}, error: () => {} };
    this.engine = new Engine({ held: { max: cfg.held.max, timeoutMs: cfg.held.timeout_ms, defaultVerdict: cfg.held.default_verdict }, interfaces, log: quiet });
    this.engine.setPipeline(buildStages(replayCfg, { log: quiet, stateDir: this.stateDir }).map((b) => b.stage));
    for (const q of cfg.queues) {
      let source = -1;
      const queue = NfQueue.open({ queue: q.num, copyRange: Math.min(q.copy_range, 65531), batchSize: 1,
        defaultVerdict: q.default_verdict === 'accept' ? V_ACCEPT : V_DROP }, (b) => this.engine.handleBatch(source, b), this.fake);
      source = this.engine.addSource(queue, q.num, { defaultVerdict: q.default_verdict, onInvalid: q.on_invalid });
      this.sources.set(q.num, { queue, source });
    }
    this.tracer = new Tracer(this.engine);
    const f = compileFilter(filter, interfaces);
    this.sub = this.tracer.subscribe(f.filter, { max: Infinity });
    this.names = { ifname: (i: number) => interfaces.nameOf(i), reason: (id: number) => this.engine.counters.info(id)?.name ?? `reason${id}` };
  }

  private hookFor(ip: Uint8Array): number {
    if (this.hook !== 'auto') return HOOKS.indexOf(this.hook as typeof HOOKS[number]);
    if (this.publics.size === 0) return HOOK_FORWARD;
    const dst = ip.length >= 20 && ip[0]! >> 4 === 4 ? ((ip[16]! << 24) | (ip[17]! << 16) | (ip[18]! << 8) | ip[19]!) >>> 0 : -1;
    return this.publics.has(dst) ? HOOK_PREROUTING : HOOK_POSTROUTING;
  }

  /** Packet number n of the capture (its id in the fake queue, so releases name it). */
  feed(n: number, ip: Uint8Array): void {
    const fq = this.fake.queue(this.queueNum);
    const before = fq.sent.length;
    fq.feed([{ bytes: ip, id: n, hook: this.hookFor(ip), indev: this.indev, outdev: this.outdev }]);
    for (const r of this.sub.records.splice(0)) this.print({ n, ...traceJson(r, this.names, false, this.layers) });
    this.releases(before);
  }

  /** Verdicts held packets got since `from` (released by a later packet, or expired). */
  private releases(from: number): void {
    const sent = this.fake.queue(this.queueNum).sent;
    for (let i = from; i < sent.length; i++) {
      const s = sent[i]!;
      if (!s.released || this.printed.has(s.id)) continue;
      this.printed.set(s.id, 1);
      this.printRelease({ released: s.id, verdict: s.verdict === V_ACCEPT ? 'accept' : 'drop',
        ...(s.mark >= 0 ? { mark_out: `0x${s.mark.toString(16)}` } : {}), ...(s.payload ? { rewritten: true as const } : {}) });
    }
  }

  async close(): Promise<void> {
    const before = this.fake.queue(this.queueNum).sent.length;
    await this.engine.close(); // held packets get their timeout verdict now
    this.releases(before);
    this.tracer.unsubscribe(this.sub);
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
