/**
 * Reading capture files for tools and tests: classic pcap (µs and ns magic, either byte order) and
 * pcapng (SHB/IDB/EPB/SPB, per-interface link type and if_tsresol), and stripping the link layer
 * (Ethernet with 802.1Q/802.1ad tags, RAW, LINUX_SLL, LINUX_SLL2, NULL/LOOP, IPV4/IPV6) down to
 * the IP packet. Not a hot path: records are yielded as subarrays of the file buffer (no copies).
 */

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

export interface CaptureRecord {
  /** Index in the file (0-based). */
  index: number;
  /** Seconds since the epoch (fractional). */
  time: number;
  linktype: number;
  /** The captured bytes (a view into the file buffer). */
  data: Uint8Array;
  /** Length on the wire (may exceed data.length when the capture was snapped). */
  origLength: number;
  /** pcapng opt_comment values of the packet's block (e.g. `sluice tap` verdicts). */
  comments?: string[];
}

export class CaptureError extends Error {}

/** Iterates the records of a pcap or pcapng file held in memory. Throws CaptureError on a bad file. */
export function* readCapture(file: Uint8Array): Generator<CaptureRecord> {
  if (file.length < 4) throw new CaptureError('file too short for a capture header');
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const m = dv.getUint32(0, false);
  if (m === 0x0a0d0d0a) { yield* readPcapng(file, dv); return; }
  let le: boolean, nano: boolean;
  if (m === 0xa1b2c3d4) { le = false; nano = false; } else if (m === 0xd4c3b2a1) { le = true; nano = false; }
  else if (m === 0xa1b23c4d) { le = false; nano = true; } else if (m === 0x4d3cb2a1) { le = true; nano = true; }
  else throw new CaptureError(`not a pcap/pcapng file (magic ${m.toString(16)})`);
  if (file.length < 24) throw new CaptureError(`truncated pcap header: ${file.length} bytes, 24 needed (at byte offset 0)`);
  const linktype = dv.getUint32(20, le) & 0x0fffffff;
  let p = 24, index = 0;
  while (p < file.length) {
    if (p + 16 > file.length) throw new CaptureError(`record ${index} at byte offset ${p}: truncated record header (${file.length - p} of 16 bytes)`);
    const sec = dv.getUint32(p, le), frac = dv.getUint32(p + 4, le);
    const incl = dv.getUint32(p + 8, le), orig = dv.getUint32(p + 12, le);
    if (p + 16 + incl > file.length) {
      throw new CaptureError(`record ${index} at byte offset ${p}: captured length ${incl} runs past the end of the file (${file.length - p - 16} bytes left)`);
    }
    yield { index: index++, time: sec + frac / (nano ? 1e9 : 1e6), linktype,
      data: file.subarray(p + 16, p + 16 + incl), origLength: orig };
    p += 16 + incl;
  }
}

function* readPcapng(file: Uint8Array, dv: DataView): Generator<CaptureRecord> {
  let le = true;
  let ifaces: { linktype: number; tsDiv: number }[] = [];
  let p = 0, index = 0;
  const bad = (what: string): never => { throw new CaptureError(`pcapng block at byte offset ${p}: ${what}`); };
  while (p < file.length) {
    if (p + 12 > file.length) bad(`truncated block header (${file.length - p} of at least 12 bytes)`);
    const typeBE = dv.getUint32(p, false);
    if (typeBE === 0x0a0d0d0a) {
      const bom = dv.getUint32(p + 8, true);
      if (bom === 0x1a2b3c4d) le = true; else if (bom === 0x4d3c2b1a) le = false;
      else bad('bad section header byte-order magic');
      ifaces = [];
    }
    const type = dv.getUint32(p, le);
    const len = dv.getUint32(p + 4, le);
    if (len < 12 || len % 4 !== 0) bad(`bad block length ${len}`);
    if (p + len > file.length) bad(`block length ${len} runs past the end of the file (${file.length - p} bytes left)`);
    if (dv.getUint32(p + len - 4, le) !== len) bad(`trailing block length ${dv.getUint32(p + len - 4, le)} differs from ${len}`);
    const body = p + 8, bodyEnd = p + len - 4;
    const need = type === 1 ? 8 : type === 6 ? 20 : type === 3 ? 4 : type === 0x0a0d0d0a ? 16 : 0;
    if (bodyEnd - body < need) bad(`${len}-byte block of type ${type} is shorter than its ${need + 12}-byte minimum`);
    if (type === 1) { // Interface Description Block
      let tsDiv = 1e6;
      // Options: if_tsresol (9): 1 byte, high bit set → power of 2, else power of 10.
      for (let o = body + 8; o + 4 <= bodyEnd;) {
        const code = dv.getUint16(o, le), ol = dv.getUint16(o + 2, le);
        if (code === 0) break;
        if (code === 9 && ol >= 1) {
          const r = file[o + 4]!;
          tsDiv = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
        }
        o += 4 + ((ol + 3) & ~3);
      }
      ifaces.push({ linktype: dv.getUint16(body, le), tsDiv });
    } else if (type === 6) { // Enhanced Packet Block
      const ifc = ifaces[dv.getUint32(body, le)];
      if (!ifc) bad(`packet for undeclared interface ${dv.getUint32(body, le)}`);
      const ts = dv.getUint32(body + 4, le) * 2 ** 32 + dv.getUint32(body + 8, le);
      const cap = dv.getUint32(body + 12, le), orig = dv.getUint32(body + 16, le);
      if (body + 20 + cap > bodyEnd) bad(`captured length ${cap} runs past the block end`);
      const comments = optionComments(file, dv, le, body + 20 + ((cap + 3) & ~3), bodyEnd);
      yield { index: index++, time: ts / ifc.tsDiv, linktype: ifc.linktype,
        data: file.subarray(body + 20, body + 20 + cap), origLength: orig, ...(comments.length ? { comments } : {}) };
    } else if (type === 3) { // Simple Packet Block: interface 0, no timestamp
      const ifc = ifaces[0];
      if (!ifc) bad('simple packet before any interface');
      const orig = dv.getUint32(body, le);
      const cap = Math.min(orig, bodyEnd - body - 4);
      yield { index: index++, time: 0, linktype: ifc.linktype, data: file.subarray(body + 4, body + 4 + cap), origLength: orig };
    }
    p += len;
  }
}

/** The opt_comment (code 1) values among a block's options at [o, end); a malformed option ends the list. */
function optionComments(file: Uint8Array, dv: DataView, le: boolean, o: number, end: number): string[] {
  const out: string[] = [];
  while (o + 4 <= end) {
    const code = dv.getUint16(o, le), len = dv.getUint16(o + 2, le);
    if (code === 0 || o + 4 + len > end) break;
    if (code === 1) out.push(new TextDecoder().decode(file.subarray(o + 4, o + 4 + len)));
    o += 4 + ((len + 3) & ~3);
  }
  return out;
}

/** Where the IP packet starts inside a link-layer frame; `error` when it is not IP. */
export interface LinkInfo {
  ipOffset: number;
  /** 0x0800 / 0x86dd (or whatever the frame names). */
  ethertype: number;
  link: Record<string, unknown>;
  error?: string;
}

function mac(b: Uint8Array, o: number): string {
  const h: string[] = [];
  for (let i = 0; i < 6; i++) h.push(b[o + i]!.toString(16).padStart(2, '0'));
  return h.join(':');
}

export function stripLink(linktype: number, b: Uint8Array): LinkInfo {
  const u16 = (o: number): number => (b[o]! << 8) | b[o + 1]!;
  switch (linktype) {
    case LINKTYPE_ETHERNET: {
      if (b.length < 14) return { ipOffset: 0, ethertype: 0, link: { type: 'ethernet' }, error: 'ethernet: truncated' };
      let o = 12, et = u16(12);
      const vlans: number[] = [];
      while ((et === 0x8100 || et === 0x88a8) && o + 6 <= b.length) {
        vlans.push(u16(o + 2) & 0x0fff);
        o += 4;
        et = u16(o);
      }
      const link: Record<string, unknown> = { type: 'ethernet', src: mac(b, 6), dst: mac(b, 0), ethertype: et };
      if (vlans.length) link.vlans = vlans;
      return ipOr(o + 2, et, link);
    }
    case 12: // DLT_RAW on some platforms
    case LINKTYPE_RAW:
      return { ipOffset: 0, ethertype: b.length && b[0]! >> 4 === 6 ? 0x86dd : 0x0800, link: { type: 'raw' } };
    case LINKTYPE_IPV4: return { ipOffset: 0, ethertype: 0x0800, link: { type: 'ipv4' } };
    case LINKTYPE_IPV6: return { ipOffset: 0, ethertype: 0x86dd, link: { type: 'ipv6' } };
    case LINKTYPE_LINUX_SLL: {
      if (b.length < 16) return { ipOffset: 0, ethertype: 0, link: { type: 'linux-sll' }, error: 'linux-sll: truncated' };
      return ipOr(16, u16(14), { type: 'linux-sll', packetType: u16(0), ethertype: u16(14) });
    }
    case LINKTYPE_LINUX_SLL2: {
      if (b.length < 20) return { ipOffset: 0, ethertype: 0, link: { type: 'linux-sll2' }, error: 'linux-sll2: truncated' };
      const ifindex = ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0;
      return ipOr(20, u16(0), { type: 'linux-sll2', ethertype: u16(0), ifindex, packetType: b[10] });
    }
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      if (b.length < 4) return { ipOffset: 0, ethertype: 0, link: { type: 'null' }, error: 'null: truncated' };
      const fam = linktype === LINKTYPE_LOOP ? (b[0]! << 24 | b[1]! << 16 | b[2]! << 8 | b[3]!) : (b[0]! | b[1]! << 8 | b[2]! << 16 | b[3]! << 24);
      return ipOr(4, fam === 2 ? 0x0800 : (fam === 24 || fam === 28 || fam === 30) ? 0x86dd : 0, { type: 'null', family: fam });
    }
    default:
      return { ipOffset: 0, ethertype: 0, link: { type: `linktype-${linktype}` }, error: `unsupported link type ${linktype}` };
  }
}

function ipOr(off: number, et: number, link: Record<string, unknown>): LinkInfo {
  if (et !== 0x0800 && et !== 0x86dd) return { ipOffset: off, ethertype: et, link, error: `not IP (ethertype 0x${et.toString(16)})` };
  return { ipOffset: off, ethertype: et, link };
}
