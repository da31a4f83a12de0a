/**
 * The SPD stage. Per packet: (1) anti-spoofing — a source address that belongs behind a tunnel but
 * arrived on another interface is discarded (policy.spoofed); (2) the first matching policy decides:
 * BYPASS hands the packet on, DISCARD drops it, PROTECT hands it on only when it came in through
 * (or leaves by) the policy's tunnel from (or to) the tunnel's far side, else drops it; (3) no match:
 * `default`. Every discard is counted per policy; a sampled audit line names the policy and packet.
 */
import type { Decision, PacketContext, Stage, StageServices } from '../engine/stage';
import { ipv4ToString as formatIpv4 } from '../packet/bytes';
import { Matcher, type MatcherImage } from '../select/match';
import { HOOKS } from '../select/selector';
import { compilePolicy, PolicyAction, type CompiledPolicy } from './compile';
import type { PolicyConfig } from './config';

/** A pino-like logger, or a plain function; called only for sampled audit lines. */
export type AuditLog = ((fields: Record<string, unknown>, msg: string) => void) | { warn(fields: object, msg: string): void };

export interface PolicyStageOptions { log?: AuditLog }

/** What the stage runs on: the compiled policies without their selectors (those are in the classifiers). */
export type PolicyTables = Omit<CompiledPolicy, 'sels' | 'tunnelRows'>;

/**
 * A compiled policy section other threads can run (workers: N): its tables and the two classifiers'
 * read-only images over SharedArrayBuffers (src/select/shared.ts). Compiled once by the main thread.
 */
export interface PolicyImage { compiled: PolicyTables; matcher: MatcherImage; tunnels: MatcherImage }

export class PolicyStage implements Stage {
  readonly name = 'policy';
  /** Policy fails closed: a bug must never pass what the SPD would discard. */
  readonly failure = 'closed';
  readonly compiled: PolicyTables;
  private readonly matcher: Matcher;
  private readonly tunnels: Matcher;
  private readonly action: Uint8Array;
  private readonly tunnel: Int32Array;
  private readonly reasons: Int32Array;
  private readonly hits: Float64Array;
  private readonly discards: Float64Array;
  private readonly spoofChecks: number;
  private spoofReason = 0;
  private defaultReason = 0;
  private spoofed = 0;
  private defaultDiscards = 0;
  private defaultHits = 0;
  private readonly defaultDiscard: boolean;
  private readonly every: number;
  private readonly perSecond: number;
  private tokens: number;
  private tokenSecond = -1;
  private services: StageServices | null = null;
  private auditLines = 0;
  private readonly enabled: boolean;

  constructor(cfg: PolicyConfig, private readonly opts: PolicyStageOptions = {}, image?: PolicyImage) {
    const full = image ? null : compilePolicy(cfg);
    const c = this.compiled = image?.compiled ?? full!;
    this.matcher = image ? Matcher.fromImage(image.matcher) : new Matcher(full!.sels);
    this.tunnels = image ? Matcher.fromImage(image.tunnels) : new Matcher(full!.tunnelRows);
    this.action = Uint8Array.from(c.actions);
    this.tunnel = Int32Array.from(c.tunnel);
    const n = c.names.length;
    this.reasons = new Int32Array(n);
    this.hits = new Float64Array(n);
    this.discards = new Float64Array(n);
    this.spoofChecks = cfg.spoof_check ? c.tunnelNames.length : 0;
    this.defaultDiscard = cfg.default === 'discard';
    this.every = cfg.audit.every;
    this.perSecond = cfg.audit.max_per_second;
    this.tokens = this.perSecond;
    this.enabled = cfg.enabled;
  }

  /** This stage's compiled section as an image for worker threads (the classifiers' arrays shared, not copied). */
  image(): PolicyImage {
    const { names, actions, tunnel, tunnelNames } = this.compiled;
    return { compiled: { names, actions, tunnel, tunnelNames }, matcher: this.matcher.image(), tunnels: this.tunnels.image() };
  }

  init(services: StageServices): void {
    this.services = services;
    this.matcher.bind(services.interfaces);
    this.tunnels.bind(services.interfaces);
    const c = this.compiled;
    c.names.forEach((name, i) => {
      const t = c.tunnel[i]!;
      if (c.actions[i] === PolicyAction.DISCARD) this.reasons[i] = services.reason(`policy.${name}`, `discarded by policy ${name}`);
      else if (t >= 0) this.reasons[i] = services.reason(`policy.${name}`, `policy ${name}: PROTECT traffic that did not use tunnel ${c.tunnelNames[t]}`);
    });
    this.spoofReason = services.reason('policy.spoofed', 'a tunnel\'s remote source address arrived on a non-tunnel interface');
    this.defaultReason = services.reason('policy.default', 'matched no policy (policy.default: discard)');
  }

  process(pkt: PacketContext, d: Decision): void {
    if (!this.enabled) return;
    for (let t = 0; t < this.spoofChecks; t++) {
      if (this.tunnels.matches(t * 3 + 2, pkt)) { this.discard(pkt, d, -1, this.spoofReason, 'spoofed'); return; }
    }
    const r = this.matcher.first(pkt);
    if (r < 0) {
      this.defaultHits++;
      if (this.defaultDiscard) this.discard(pkt, d, -1, this.defaultReason, 'default');
      return;
    }
    this.hits[r]!++;
    const a = this.action[r]!;
    if (a === PolicyAction.BYPASS) return;
    if (a === PolicyAction.DISCARD) { this.discard(pkt, d, r, this.reasons[r]!, 'discard'); return; }
    const t = this.tunnel[r]!;
    if (this.tunnels.matches(t * 3, pkt) || this.tunnels.matches(t * 3 + 1, pkt)) return; // protected
    // Not through the tunnel. A far-side source on another interface is a spoof (counted as such).
    if (this.tunnels.matches(t * 3 + 2, pkt)) { this.discards[r]!++; this.discard(pkt, d, -1, this.spoofReason, 'spoofed'); return; }
    this.discard(pkt, d, r, this.reasons[r]!, 'unprotected');
  }

  /** For `sluice trace`: the policy the packet matches (process() decides on the same lookups). */
  explain(pkt: PacketContext): Record<string, unknown> {
    if (!this.enabled) return { policy: '(disabled)' };
    for (let t = 0; t < this.spoofChecks; t++) if (this.tunnels.matches(t * 3 + 2, pkt)) return { policy: 'spoof_check', tunnel: this.compiled.tunnelNames[t] };
    const r = this.matcher.first(pkt);
    if (r < 0) return { policy: '(none)', default: this.defaultDiscard ? 'discard' : 'pass' };
    const t = this.tunnel[r]!;
    return { policy: this.compiled.names[r], ...(t >= 0 ? { tunnel: this.compiled.tunnelNames[t] } : {}) };
  }

  private discard(pkt: PacketContext, d: Decision, r: number, reason: number, why: string): void {
    d.drop(reason);
    let n: number;
    if (r >= 0) n = ++this.discards[r]!;
    else if (reason === this.spoofReason) n = ++this.spoofed;
    else n = ++this.defaultDiscards;
    if (n % this.every === 1 || this.every === 1) this.audit(pkt, r, why, n);
  }

  /** Sampled and rate-limited; the only place this stage builds strings. */
  private audit(pkt: PacketContext, r: number, why: string, n: number): void {
    const log = this.opts.log;
    if (!log || this.perSecond === 0) return;
    const sec = Math.floor((this.services?.now() ?? Date.now()) / 1000);
    if (sec !== this.tokenSecond) { this.tokenSecond = sec; this.tokens = this.perSecond; }
    if (this.tokens <= 0) return;
    this.tokens--;
    this.auditLines++;
    const i = pkt.info;
    const ifs = this.services?.interfaces;
    const fields: Record<string, unknown> = {
      policy: r >= 0 ? this.compiled.names[r] : why === 'spoofed' ? 'spoof_check' : 'default',
      why, count: n,
      src: i.ipVersion === 4 ? formatIpv4(i.src) : 'ipv6', dst: i.ipVersion === 4 ? formatIpv4(i.dst) : 'ipv6',
      proto: i.proto, sport: i.sport, dport: i.dport,
      in: pkt.indev ? ifs?.nameOf(pkt.indev) ?? pkt.indev : null, out: pkt.outdev ? ifs?.nameOf(pkt.outdev) ?? pkt.outdev : null,
      hook: HOOKS[pkt.hook] ?? pkt.hook,
    };
    const msg = `policy discard: ${fields.policy} (${why}) ${fields.src}:${i.sport} -> ${fields.dst}:${i.dport} proto ${i.proto}`;
    if (typeof log === 'function') log(fields, msg); else log.warn(fields, msg);
  }

  stats(): Record<string, unknown> {
    const policies: Record<string, { hits: number; discards: number }> = {};
    this.compiled.names.forEach((n, i) => { policies[n] = { hits: this.hits[i]!, discards: this.discards[i]! }; });
    return { policies, spoofed: this.spoofed, no_match: this.defaultHits, default_discards: this.defaultDiscards, audit_lines: this.auditLines };
  }
}
