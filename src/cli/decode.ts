/**
 * `sluice decode`: prints one JSON object per packet of a pcap/pcapng file (or of --hex bytes) with
 * every layer the packet layer understands, and the reason for anything invalid.
 */
import { readFileSync } from 'node:fs';
import { describePacket } from '../packet/describe';
import { readCapture, stripLink, CaptureError, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2 } from '../packet/pcap';
import { fromHex } from '../packet/bytes';

export const DECODE_HELP = `usage: sluice decode [options] FILE
       sluice decode [options] --hex HEX [--hex HEX ...]

Prints one JSON object per packet: link layer, IPv4/IPv6, UDP/TCP/ICMP/ESP, and for IKE (UDP 500,
or 4500 after the non-ESP marker) the SPIs, exchange, flags and cleartext payloads; for ESP-in-UDP
the SPI and sequence; for DHCP (UDP 67/68) the header, message type and decoded options including
classless static routes (121/249). A packet that cannot be read carries
"invalid": {"layer": ..., "reason": ...} (truncated, bad-length, bad-version, bad-option, ...).

FILE is a classic pcap (any byte order, µs or ns) or pcapng capture with link type Ethernet
(802.1Q tags skipped), RAW IP, Linux cooked (SLL, SLL2), NULL/LOOP or IPv4/IPv6. pcapng packet
comments (as \`sluice tap\` writes them) are printed as "comments".

options:
  --hex HEX        decode these bytes instead of a file (spaces and colons allowed); repeatable
  --link TYPE      link layer of --hex bytes: raw (default), ethernet, sll, sll2
  --count N        stop after N packets
  --pretty         indent the JSON
  -h, --help       this text

exit status: 0 when every packet was read (invalid packets included), 1 when the file could not
be read or is malformed (the error names the byte offset; packets before it are printed), 2 for
bad usage.`;

const LINKS: Record<string, number> = { raw: LINKTYPE_RAW, ethernet: LINKTYPE_ETHERNET, eth: LINKTYPE_ETHERNET,
  sll: LINKTYPE_LINUX_SLL, sll2: LINKTYPE_LINUX_SLL2 };

function frame(index: number, time: number | undefined, linktype: number, data: Uint8Array, origLength: number, comments?: string[]): Record<string, unknown> {
  const li = stripLink(linktype, data);
  const base: Record<string, unknown> = { n: index + 1 };
  if (comments) base.comments = comments;
  if (time !== undefined) base.time = Number(time.toFixed(6));
  base.length = origLength;
  if (data.length < origLength) base.captured = data.length;
  base.link = li.link;
  if (li.error) return { ...base, invalid: { layer: 'link', reason: li.error } };
  return { ...base, ...describePacket(data, li.ipOffset, data.length - li.ipOffset) };
}

export async function decodeCommand(argv: string[], out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  err: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<number> {
  const hex: string[] = [];
  let file: string | undefined, link = 'raw', count = Infinity, pretty = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string | undefined => argv[++i];
    if (a === '-h' || a === '--help') { out(DECODE_HELP); return 0; }
    else if (a === '--hex') { const v = val(); if (v === undefined) { err('--hex needs bytes'); return 2; } hex.push(v); }
    else if (a === '--link') { const v = val(); if (!v || !(v in LINKS)) { err(`--link: one of ${Object.keys(LINKS).join(', ')}`); return 2; } link = v; }
    else if (a === '--count') { const v = Number(val()); if (!Number.isInteger(v) || v < 0) { err('--count needs a number'); return 2; } count = v; }
    else if (a === '--pretty') pretty = true;
    else if (a.startsWith('-') && a !== '-') { err(`unknown option ${a}\n\n${DECODE_HELP}`); return 2; }
    else if (file === undefined) file = a;
    else { err('one FILE at a time'); return 2; }
  }
  const print = (o: unknown): void => out(JSON.stringify(o, null, pretty ? 2 : undefined));
  if (hex.length) {
    if (file !== undefined) { err('give either FILE or --hex, not both'); return 2; }
    for (let i = 0; i < hex.length && i < count; i++) {
      const b = fromHex(hex[i]!);
      if (!b) { err(`--hex ${i + 1}: not hex`); return 2; }
      print(frame(i, undefined, LINKS[link]!, b, b.length));
    }
    return 0;
  }
  if (file === undefined) { err(DECODE_HELP); return 2; }
  let data: Uint8Array;
  try {
    data = file === '-' ? readFileSync(0) : readFileSync(file);
  } catch (e) {
    err(`cannot read ${file}: ${(e as Error).message}`);
    return 1;
  }
  try {
    for (const r of readCapture(data)) {
      if (r.index >= count) break;
      print(frame(r.index, r.time, r.linktype, r.data, r.origLength, r.comments));
    }
  } catch (e) {
    if (e instanceof CaptureError) { err(`${file}: ${e.message}`); return 1; }
    throw e;
  }
  return 0;
}
