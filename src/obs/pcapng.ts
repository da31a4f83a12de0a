/**
 * A pcapng writer for `sluice tap`: one Section Header, one Interface Description (raw IP, link
 * type 101), then one Enhanced Packet Block per packet with its trace line as an `opt_comment`
 * (pcapng spec, draft-ietf-opsawg-pcapng §4.2-4.3: options are code/length/value padded to 32 bits,
 * ended by opt_endofopt; opt_comment = 1 is allowed in every block). Little-endian, µs timestamps
 * (the IDB's default if_tsresol). Blocks are built whole, so a file cut short ends on a block boundary.
 */

const BT_SHB = 0x0a0d0d0a;
const BT_IDB = 1;
const BT_EPB = 6;
const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
export const PCAPNG_LINKTYPE_RAW = 101;

const pad4 = (n: number): number => (n + 3) & ~3;

function options(opts: [number, Uint8Array][]): Uint8Array {
  if (opts.length === 0) return new Uint8Array(0);
  const size = opts.reduce((n, [, v]) => n + 4 + pad4(v.length), 0) + 4;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let p = 0;
  for (const [code, v] of opts) {
    dv.setUint16(p, code, true);
    dv.setUint16(p + 2, v.length, true);
    out.set(v, p + 4);
    p += 4 + pad4(v.length);
  }
  dv.setUint16(p, OPT_ENDOFOPT, true); // and a zero length
  return out;
}

function block(type: number, body: Uint8Array): Uint8Array {
  const len = 12 + body.length;
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, type, true);
  dv.setUint32(4, len, true);
  out.set(body, 8);
  dv.setUint32(len - 4, len, true);
  return out;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The file header: a section (byte-order magic, version 1.0, unknown length) and one raw-IP interface. */
export function pcapngHeader(app = 'sluice', ifname = 'sluice'): Uint8Array {
  const shbOpts = options([[SHB_USERAPPL, utf8(app)]]);
  const shb = new Uint8Array(16 + shbOpts.length);
  const sdv = new DataView(shb.buffer);
  sdv.setUint32(0, 0x1a2b3c4d, true);
  sdv.setUint16(4, 1, true);
  sdv.setUint16(6, 0, true);
  sdv.setInt32(8, -1, true); // section length: not given
  sdv.setInt32(12, -1, true);
  shb.set(shbOpts, 16);
  const idbOpts = options([[IF_NAME, utf8(ifname)]]);
  const idb = new Uint8Array(8 + idbOpts.length);
  const idv = new DataView(idb.buffer);
  idv.setUint16(0, PCAPNG_LINKTYPE_RAW, true);
  idv.setUint32(4, 0, true); // snaplen: no limit
  idb.set(idbOpts, 8);
  const a = block(BT_SHB, shb), b = block(BT_IDB, idb);
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** One packet (an IP packet, interface 0) with its comment; timeMs is the epoch in milliseconds. */
export function pcapngPacket(data: Uint8Array, timeMs: number, origLength: number, comment?: string): Uint8Array {
  const opts = options(comment ? [[OPT_COMMENT, utf8(comment)]] : []);
  const body = new Uint8Array(20 + pad4(data.length) + opts.length);
  const dv = new DataView(body.buffer);
  const us = Math.round(timeMs * 1000);
  dv.setUint32(0, 0, true);
  dv.setUint32(4, Math.floor(us / 2 ** 32), true);
  dv.setUint32(8, us % 2 ** 32, true);
  dv.setUint32(12, data.length, true);
  dv.setUint32(16, Math.max(origLength, data.length), true);
  body.set(data, 20);
  body.set(opts, 20 + pad4(data.length));
  return block(BT_EPB, body);
}
