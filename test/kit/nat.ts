/**
 * Test helpers for the NAT: tiny packet builders (IPv4 + ESP / UDP / IKE header, correct checksums),
 * a fake StageServices, and a driver that classifies and runs one packet through a stage.
 * Used by the unit tests and the benchmark; not on the production path.
 */
import { Classified, classify } from '../../src/packet/classify';
import { Decision, HOOK_POSTROUTING, HOOK_PREROUTING, Verdict, type PacketContext, type StageServices, type Stage } from '../../src/engine/stage';
import { Interfaces } from '../../src/io/interfaces';
import { ip4 as ipv4ToNumber } from '../../src/packet/bytes';

export const ip = ipv4ToNumber;

function sum16(b: Uint8Array, off: number, len: number, init = 0): number {
  let s = init;
  for (let i = 0; i + 1 < len; i += 2) s += (b[off + i] << 8) | b[off + i + 1];
  if (len & 1) s += b[off + len - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

export function ipv4Checksum(b: Uint8Array, l3 = 0): number {
  const hl = (b[l3] & 15) * 4;
  return (~sum16(b, l3, hl) & 0xffff);
}

/** Full UDP checksum over pseudo-header + UDP (with the checksum field as it is; 0 when right). */
export function udpChecksumOk(b: Uint8Array, l3 = 0): boolean {
  const hl = (b[l3] & 15) * 4;
  const tl = (b[l3 + 2] << 8) | b[l3 + 3];
  const ulen = tl - hl;
  let ph = 0;
  for (let i = 12; i < 20; i += 2) ph += (b[l3 + i] << 8) | b[l3 + i + 1];
  ph += 17 + ulen;
  return (~sum16(b, l3 + hl, ulen, ph) & 0xffff) === 0;
}

export function ipv4Packet(src: number, dst: number, proto: number, payload: Uint8Array): Uint8Array {
  const b = new Uint8Array(20 + payload.length);
  const dv = new DataView(b.buffer);
  b[0] = 0x45;
  dv.setUint16(2, b.length);
  dv.setUint16(4, 0x1234);
  b[8] = 64;
  b[9] = proto;
  dv.setUint32(12, src >>> 0);
  dv.setUint32(16, dst >>> 0);
  b.set(payload, 20);
  dv.setUint16(10, ipv4Checksum(b));
  return b;
}

export function udpPacket(src: number, dst: number, sport: number, dport: number, payload: Uint8Array, zeroChecksum = false): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  const dv = new DataView(u.buffer);
  dv.setUint16(0, sport); dv.setUint16(2, dport); dv.setUint16(4, u.length);
  u.set(payload, 8);
  const b = ipv4Packet(src, dst, 17, u);
  if (!zeroChecksum) {
    let ph = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + 17 + u.length;
    ph = (ph & 0xffff) + (ph >>> 16);
    let c = ~sum16(b, 20, u.length, ph) & 0xffff;
    if (c === 0) c = 0xffff;
    new DataView(b.buffer).setUint16(26, c);
  }
  return b;
}

export function espPayload(spi: number, seq: number, len = 64): Uint8Array {
  const p = new Uint8Array(Math.max(8, len));
  const dv = new DataView(p.buffer);
  dv.setUint32(0, spi >>> 0); dv.setUint32(4, seq >>> 0);
  for (let i = 8; i < p.length; i++) p[i] = (i * 7 + spi) & 255;
  return p;
}

export function esp(src: number, dst: number, spi: number, seq = 1, len = 64): Uint8Array {
  return ipv4Packet(src, dst, 50, espPayload(spi, seq, len));
}

export function espInUdp(src: number, dst: number, spi: number, seq = 1, zeroChecksum = false): Uint8Array {
  return udpPacket(src, dst, 4500, 4500, espPayload(spi, seq), zeroChecksum);
}

export function keepalive(src: number, dst: number): Uint8Array {
  return udpPacket(src, dst, 4500, 4500, Uint8Array.of(0xff));
}

export interface IkeFields {
  ispi: bigint;
  rspi?: bigint;
  exchange: number;
  /** IKEv2 flags (0x08 initiator, 0x20 response) */
  flags?: number;
  version?: 1 | 2;
  msgId?: number;
  port?: 500 | 4500;
}

export const IKE_SA_INIT = 34, IKE_AUTH = 35, CREATE_CHILD_SA = 36, INFORMATIONAL = 37;
export const V1_MAIN = 2, V1_QUICK = 32;

export function ike(src: number, dst: number, f: IkeFields): Uint8Array {
  const marker = f.port === 4500 ? 4 : 0;
  const h = new Uint8Array(marker + 28 + 8);
  const dv = new DataView(h.buffer);
  dv.setBigUint64(marker, f.ispi);
  dv.setBigUint64(marker + 8, f.rspi ?? 0n);
  h[marker + 16] = 33; // next payload: SA (v2) / arbitrary
  h[marker + 17] = (f.version ?? 2) === 2 ? 0x20 : 0x10;
  h[marker + 18] = f.exchange;
  h[marker + 19] = f.flags ?? 0x08;
  dv.setUint32(marker + 20, f.msgId ?? 0);
  dv.setUint32(marker + 24, 28 + 8);
  const port = f.port ?? 500;
  return udpPacket(src, dst, port, port, h);
}

export class FakeServices implements StageServices {
  time = 1000;
  readonly reasons: string[] = ['none'];
  readonly counts = new Map<string, number>();
  nextHandle = 1;
  holdCap = 1_000_000;
  /** handle → packet bytes */
  readonly held = new Map<number, { bytes: Uint8Array; hook: number }>();
  readonly released: number[] = [];
  readonly releasedWith: [number, Verdict][] = [];
  current: { bytes: Uint8Array; hook: number } | null = null;
  readonly interfaces = Interfaces.fromList([]);

  reason(name: string): number { this.reasons.push(name); return this.reasons.length - 1; }
  count(id: number, n = 1): void { const k = this.reasons[id]; this.counts.set(k, (this.counts.get(k) ?? 0) + n); }
  hold(): number {
    if (this.held.size >= this.holdCap || !this.current) return -1;
    const h = this.nextHandle++;
    this.held.set(h, { bytes: this.current.bytes.slice(), hook: this.current.hook });
    return h;
  }
  release(handle: number): void { this.released.push(handle); }
  releaseWith(handle: number, v: Verdict.ACCEPT | Verdict.DROP): void { this.releasedWith.push([handle, v]); this.held.delete(handle); }
  inject(): boolean { return false; }
  injectL2(): boolean { return false; }
  now(): number { return this.time; }
}

export interface RunResult { verdict: Verdict; reason: string; bytes: Uint8Array; rewritten: boolean; }

const info = new Classified();
const decision = new Decision();

/** Head-room before the packet in the fake slab: as in a real batch, packets do not start at 0. */
const SLAB_OFFSET = 40;

/** Runs one packet (a copy, placed at an offset inside a larger slab) through the stage at the given hook. */
export function run(stage: Stage, fs: FakeServices, pkt: Uint8Array, hook: number): RunResult {
  const slab = new Uint8Array(SLAB_OFFSET + pkt.length + 24).fill(0xee);
  slab.set(pkt, SLAB_OFFSET);
  const bytes = slab.subarray(SLAB_OFFSET, SLAB_OFFSET + pkt.length);
  classify(info, slab, SLAB_OFFSET, pkt.length);
  const ctx: PacketContext = { bytes: slab, offset: SLAB_OFFSET, length: pkt.length, capacity: pkt.length, mark: 0, indev: 1, outdev: 2, hook, queue: 0, info };
  decision.reset();
  fs.current = { bytes, hook };
  stage.process(ctx, decision);
  fs.current = null;
  for (let i = 0; i < slab.length; i++) {
    if ((i < SLAB_OFFSET || i >= SLAB_OFFSET + pkt.length) && slab[i] !== 0xee) throw new Error(`stage wrote outside the packet (slab byte ${i})`);
  }
  return { verdict: decision.verdict, reason: decision.verdict === Verdict.DROP ? fs.reasons[decision.reason] : '', bytes, rewritten: decision.rewritten };
}

export const out = (stage: Stage, fs: FakeServices, pkt: Uint8Array): RunResult => run(stage, fs, pkt, HOOK_POSTROUTING);
export const inb = (stage: Stage, fs: FakeServices, pkt: Uint8Array): RunResult => run(stage, fs, pkt, HOOK_PREROUTING);

/** Re-runs every released held packet (what the engine does on release). */
export function drainReleased(stage: Stage, fs: FakeServices): RunResult[] {
  const res: RunResult[] = [];
  while (fs.released.length > 0) {
    const h = fs.released.shift()!;
    const p = fs.held.get(h);
    if (!p) continue;
    fs.held.delete(h);
    res.push(run(stage, fs, p.bytes, p.hook));
  }
  return res;
}

export function dstOf(b: Uint8Array): number { return new DataView(b.buffer, b.byteOffset).getUint32(16); }
export function srcOf(b: Uint8Array): number { return new DataView(b.buffer, b.byteOffset).getUint32(12); }
