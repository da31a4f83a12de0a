/**
 * Trace records (src/engine/trace.ts) as plain JSON for the control socket, and as one text line
 * per packet for `sluice trace` / `sluice replay` / the comments of `sluice tap`:
 *   14:02:07.113 q1 prerouting eth1>- esp 198.51.100.7 > 203.0.113.1 spi 0xc0ffee01
 *     | nat: mapping=10.1.0.2 learned=window paired → continue … | accept rewrite dst 203.0.113.1→10.1.0.2
 * With `workers: N` the thread follows the queue: `q6 w1 prerouting …`, `q6 owner prerouting …`.
 * Control path only (allocates).
 */
import { describePacket } from '../packet/describe';
import type { TraceRecord } from '../engine/trace';

/** Stage verdict codes (engine/stage.ts Verdict) by number. */
const STEP_VERDICTS = ['continue', 'accept', 'drop', 'hold', 'answered'];
const HOOKS = ['prerouting', 'input', 'forward', 'output', 'postrouting'];

export interface TraceStepJson {
  stage: string;
  /** continue | accept | drop | hold | answered | threw */
  decision: string;
  reason?: string;
  /** Mark set so far, value/mask. */
  mark?: string;
  rewritten?: boolean;
  error?: string;
  /** What the stage's explain() said (rule, mapping, learning, scope). */
  explain?: Record<string, unknown>;
}

export interface TraceLineJson {
  time: string;
  queue: number;
  /** With workers: N, the thread that decided it: "w0", "w1", … or "owner" (the NAT owner, for packets a worker forwarded). */
  thread?: string;
  hook: string;
  in: string;
  out: string;
  mark: string;
  length: number;
  /** One-line summary of the packet's layers (the fields `sluice decode` prints). */
  packet: string;
  stages: TraceStepJson[];
  /** accept | drop | hold | answered */
  verdict: string;
  /** Drop reason of the final verdict. */
  reason?: string;
  /** Mark sent with the verdict (absent: unchanged). */
  mark_out?: string;
  /** The rewritten packet's summary and what changed. */
  rewrite?: { packet: string; changed: string[] };
  /** The packet's bytes as they arrived, base64 (for `sluice tap`). */
  bytes?: string;
  /** Every layer, exactly as `sluice decode` prints it (--layers). */
  layers?: Record<string, unknown>;
}

export interface TraceNames {
  ifname(index: number): string | undefined;
  reason(id: number): string;
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

function ifLabel(names: TraceNames, i: number): string {
  return i === 0 ? '-' : names.ifname(i) ?? `if${i}`;
}

export function hookName(hook: number): string {
  return HOOKS[hook] ?? (hook === -1 ? 'tun' : `hook${hook}`);
}

/** The summary line of a packet: addresses, ports, protocol and the application layer sluice reads. */
export function packetSummary(bytes: Uint8Array): string {
  let d: Record<string, any>;
  try { d = describePacket(bytes, 0, bytes.length) as Record<string, any>; } catch (e) { return `undecodable (${(e as Error).message})`; }
  const ip = d.ipv4 ?? d.ipv6;
  const parts: string[] = [];
  const src = ip?.src ?? '?', dst = ip?.dst ?? '?';
  if (d.udp) parts.push(`udp ${src}:${d.udp.sport} > ${dst}:${d.udp.dport}`);
  else if (d.tcp) parts.push(`tcp ${src}:${d.tcp.sport} > ${dst}:${d.tcp.dport} [${(d.tcp.flags as string[]).join(',')}]`);
  else if (d.icmp || d.icmpv6) { const i = d.icmp ?? d.icmpv6; parts.push(`${d.icmp ? 'icmp' : 'icmpv6'} ${src} > ${dst} type ${i.type} code ${i.code}`); }
  else if (d.esp && !d.udp) parts.push(`esp ${src} > ${dst} spi ${d.esp.spi} seq ${d.esp.seq}`);
  else if (d.l4) parts.push(`proto ${d.l4.protocol} ${src} > ${dst}`);
  else parts.push(ip ? `ip ${src} > ${dst}` : 'not ip');
  if (d.kind === 'fragment') parts.push('fragment');
  if (d.udp && d.esp) parts.push(`esp-in-udp spi ${d.esp.spi} seq ${d.esp.seq}`);
  if (d.natKeepalive) parts.push('nat-keepalive');
  if (d.ike) {
    const k = d.ike;
    parts.push(`ike ${k.exchange} ${(k.flags as string[]).join(',')} ispi ${k.ispi} rspi ${k.rspi} msgid ${k.messageId}`);
  }
  if (d.dhcp) parts.push(`dhcp ${d.dhcp.messageType ?? d.dhcp.op} xid ${d.dhcp.xid} ciaddr ${d.dhcp.ciaddr} giaddr ${d.dhcp.giaddr}`);
  if (d.invalid) parts.push(`invalid ${d.invalid.layer}: ${d.invalid.reason}`);
  return parts.join(' ');
}

function changes(a: Uint8Array, b: Uint8Array): string[] {
  const out: string[] = [];
  const da = describePacket(a, 0, a.length) as Record<string, any>;
  const db = describePacket(b, 0, b.length) as Record<string, any>;
  const ia = da.ipv4 ?? da.ipv6, ib = db.ipv4 ?? db.ipv6;
  if (ia && ib) {
    if (ia.src !== ib.src) out.push(`src ${ia.src}→${ib.src}`);
    if (ia.dst !== ib.dst) out.push(`dst ${ia.dst}→${ib.dst}`);
  }
  const la = da.udp ?? da.tcp, lb = db.udp ?? db.tcp;
  if (la && lb) {
    if (la.sport !== lb.sport) out.push(`sport ${la.sport}→${lb.sport}`);
    if (la.dport !== lb.dport) out.push(`dport ${la.dport}→${lb.dport}`);
  }
  if (a.length !== b.length) out.push(`length ${a.length}→${b.length}`);
  if (out.length === 0) out.push('payload');
  return out;
}

/** A record as the JSON sent over the control socket (and printed by `--json`). */
export function traceJson(r: TraceRecord, names: TraceNames, withBytes = false, withLayers = false): TraceLineJson {
  const stages: TraceStepJson[] = r.steps.map((s) => {
    const j: TraceStepJson = { stage: s.stage, decision: s.verdict < 0 ? 'threw' : STEP_VERDICTS[s.verdict] ?? String(s.verdict) };
    if (s.verdict === 2) j.reason = s.reasonName ?? names.reason(s.reason);
    if (s.markMask !== 0) j.mark = `${hex(s.markValue)}/${hex(s.markMask)}`;
    if (s.rewritten) j.rewritten = true;
    if (s.error !== undefined) j.error = s.error;
    if (s.explain && Object.keys(s.explain).length) j.explain = s.explain;
    return j;
  });
  const last = r.steps[r.steps.length - 1];
  let verdict = r.verdict === 1 ? 'accept' : r.verdict === 0xff ? 'hold' : 'drop';
  if (last && last.verdict === 4) verdict = 'answered';
  const out: TraceLineJson = {
    time: new Date(r.time).toISOString(), queue: r.queue, ...(r.thread === undefined ? {} : { thread: r.thread }), hook: hookName(r.hook), in: ifLabel(names, r.indev), out: ifLabel(names, r.outdev),
    mark: hex(r.mark), length: r.wireLength, packet: packetSummary(r.bytes), stages, verdict,
  };
  if (verdict === 'drop' && last && last.verdict === 2) out.reason = last.reasonName ?? names.reason(last.reason);
  else if (verdict === 'drop' && last?.error !== undefined) out.reason = `stage ${last.stage} threw`;
  if (r.markOut >= 0) out.mark_out = hex(r.markOut);
  if (r.after) out.rewrite = { packet: packetSummary(r.after), changed: changes(r.bytes, r.after) };
  if (withBytes) out.bytes = Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength).toString('base64');
  if (withLayers) out.layers = describePacket(r.bytes, 0, r.bytes.length);
  return out;
}

function explainText(e: Record<string, unknown>): string {
  return Object.entries(e).map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`).join(' ');
}

/** One line per packet for a terminal. */
export function formatTraceLine(l: TraceLineJson): string {
  const t = l.time.slice(11, 23);
  const head = `${t} q${l.queue}${l.thread ? ` ${l.thread}` : ''} ${l.hook} ${l.in}>${l.out} ${l.packet}`;
  const steps = l.stages.map((s) => {
    const what = [s.explain ? explainText(s.explain) : '', s.mark ? `mark=${s.mark}` : '', s.rewritten ? 'rewritten' : '']
      .filter(Boolean).join(' ');
    const dec = s.decision === 'drop' && s.reason ? `drop(${s.reason})` : s.decision === 'threw' ? `threw(${s.error})` : s.decision;
    return `${s.stage}: ${what ? `${what} ` : ''}→ ${dec}`;
  });
  const end = [l.verdict === 'drop' && l.reason ? `drop(${l.reason})` : l.verdict];
  if (l.mark_out) end.push(`mark ${l.mark_out}`);
  if (l.rewrite) end.push(`rewrite ${l.rewrite.changed.join(' ')}`);
  return [head, ...(steps.length ? steps : ['no stage looked']), end.join(' ')].join(' | ');
}
