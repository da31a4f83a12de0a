/**
 * The streamed `sa-list`: JSON text formatted straight from the SA table's typed arrays into one
 * reused buffer, in slices of at most ~1 ms between event-loop turns. Listing 1M SAs as objects
 * (a row, a flags array and strings per SA) made the garbage collector stop the packet loop for
 * 10–20 ms at a time; this makes no object per record. The text is byte for byte what
 * JSON.stringify() gives for the object listing (commands.ts rowOf/saList; listjson.test.ts compares
 * them), so the CLI and any other client read the same thing.
 *
 * Order: hosts numerically, then server, then public address, then record id — the object listing's
 * order. Record ids and their keys are snapshotted into typed arrays and sorted by an LSD radix sort
 * (stable, so ids stay ascending within a group), all sliced. A record that changes or goes away
 * before its group is formatted is left out (as the object listing does). A group larger than
 * GROUP_PIECE records (limits.max_sas_per_host is 256 by default) comes as several consecutive
 * groups with the same host, public and server, so that no slice formats an unbounded group.
 */
import { Ascii, bytes } from './ascii';
import { SaKind, F_PINNED, F_LEARNED, F_RESTORED } from './table';
import type { NatState } from './state';
import { saMatches, type SaFilter } from './admin';

export const GROUP_PIECE = 1024;
/** A chunk is sent once this much text is ready (or the slice's time is up). */
const CHUNK_BYTES = 1 << 18;
/** Room kept free per row: ~200 bytes, more if a counter is not a plain integer. */
const ROW_ROOM = 512;

const K_HOST = bytes('{"host":"');
const K_PUBLIC = bytes('","public":"');
const K_SERVER = bytes('","server":"');
const K_IKE = bytes('","ike":[');
const K_ESP_IN = bytes('],"esp_in":[');
const K_ESP_OUT = bytes('],"esp_out":[');
const K_END_GROUP = bytes(']}');
const K_SPI = bytes('{"spi":"');
const K_PACKETS = bytes('","packets":');
const K_BYTES = bytes(',"bytes":');
const K_AGE = bytes(',"age_s":');
const K_IDLE = bytes(',"idle_s":');
const K_FLAGS = bytes(',"flags":[');
const F_NAMES = [bytes('"pinned"'), bytes('"learned"'), bytes('"restored"')];
const F_BITS = [F_PINNED, F_LEARNED, F_RESTORED];
const VIA = ['seen', 'window', 'reply', 'elimination', 'outbound'].map((v) => bytes(`,"learned":"${v}"`));
const K_PAIRED = bytes(',"paired":true');
const K_UNPAIRED = bytes(',"paired":false');
const K_SPI_R = bytes(',"spi_r":"');

export interface ListAt { now: number; wall: number }

/**
 * The listing as steps: `null` means "a slice ended, let the event loop run"; a Buffer is one chunk,
 * a JSON array of groups (a view into a reused buffer: use it before asking for the next step).
 */
export function* saListText(s: NatState, flt: SaFilter | null, sliceMs: number, at?: ListAt): Generator<Buffer | null> {
  const sas = s.sas;
  let t0 = performance.now();
  const due = (): boolean => performance.now() - t0 >= sliceMs;
  // 1. Snapshot the matching records (--host, --server, --spi): id, host, server, public.
  const top = sas.top;
  const ids = new Uint32Array(top);
  const kHost = new Uint32Array(top);
  const kSrv = new Uint32Array(top);
  const kPub = new Uint8Array(top);
  let n = 0;
  for (let id = 0; id < top; id++) {
    if ((id & 1023) === 1023 && due()) { yield null; t0 = performance.now(); }
    if (sas.kind[id] === SaKind.FREE || (flt !== null && !saMatches(s, id, flt))) continue;
    ids[n] = id; kHost[n] = sas.host[id]; kSrv[n] = sas.server[id]; kPub[n] = sas.pub[id]; n++;
  }
  // 2. Sort positions by (host, server, public), least significant digit first (stable).
  let perm = new Uint32Array(n);
  let tmp = new Uint32Array(n);
  const count = new Uint32Array(65536);
  const digit = (pass: number, e: number): number => {
    switch (pass) {
      case 0: return kPub[e];
      case 1: return kSrv[e] & 0xffff;
      case 2: return kSrv[e] >>> 16;
      case 3: return kHost[e] & 0xffff;
      default: return kHost[e] >>> 16;
    }
  };
  for (let pass = 0; pass < 5; pass++) {
    count.fill(0);
    for (let i = 0; i < n; i++) {
      if ((i & 1023) === 1023 && due()) { yield null; t0 = performance.now(); }
      if (pass === 0) perm[i] = i;
      count[digit(pass, i)]++;
    }
    if (n === 0 || count[digit(pass, 0)] === n) continue; // one value: already in order
    let sum = 0;
    for (let d = 0; d < 65536; d++) { const c = count[d]; count[d] = sum; sum += c; }
    for (let j = 0; j < n; j++) {
      if ((j & 1023) === 1023 && due()) { yield null; t0 = performance.now(); }
      const e = perm[j];
      tmp[count[digit(pass, e)]++] = e;
    }
    const t = perm; perm = tmp; tmp = t;
  }
  // 3. Groups (runs of equal keys), in pieces, formatted into chunks.
  const now = at?.now ?? s.services?.now() ?? 0;
  const wall = at?.wall ?? Date.now();
  const o = new Ascii(CHUNK_BYTES + GROUP_PIECE * ROW_ROOM);
  o.byte(0x5b); // [
  let groups = 0;
  const live = (e: number): boolean => {
    const id = ids[e];
    return sas.kind[id] !== SaKind.FREE && sas.host[id] === kHost[e] && sas.server[id] === kSrv[e] && sas.pub[id] === kPub[e];
  };
  for (let g = 0; g < n;) {
    const e0 = perm[g];
    let end = g + 1;
    while (end < n && end - g < GROUP_PIECE) {
      const e = perm[end];
      if (kHost[e] !== kHost[e0] || kSrv[e] !== kSrv[e0] || kPub[e] !== kPub[e0]) break;
      end++;
    }
    let any = false;
    for (let k = g; k < end && !any; k++) any = live(perm[k]);
    if (any) {
      o.grow((end - g) * ROW_ROOM + 256);
      if (groups++ > 0) o.byte(0x2c); // ,
      o.raw(K_HOST); o.ipv4(kHost[e0]);
      o.raw(K_PUBLIC); o.ipv4(s.publics[kPub[e0]]);
      o.raw(K_SERVER); o.ipv4(kSrv[e0]);
      o.raw(K_IKE); rows(o, s, ids, perm, g, end, live, 0, now, wall);
      o.raw(K_ESP_IN); rows(o, s, ids, perm, g, end, live, 1, now, wall);
      o.raw(K_ESP_OUT); rows(o, s, ids, perm, g, end, live, 2, now, wall);
      o.raw(K_END_GROUP);
    }
    g = end;
    if (groups === 0 && due()) { yield null; t0 = performance.now(); continue; }
    if (groups > 0 && (o.n >= CHUNK_BYTES || due())) {
      o.byte(0x5d); // ]
      yield o.view();
      o.reset();
      o.byte(0x5b);
      groups = 0;
      t0 = performance.now();
    }
  }
  if (groups > 0) {
    o.byte(0x5d);
    yield o.view();
  }
}

/** The rows of one group of one list: 0 ike, 1 esp_in, 2 esp_out (every other kind, as addRow does). */
function rows(o: Ascii, s: NatState, ids: Uint32Array, perm: Uint32Array, from: number, to: number,
  live: (e: number) => boolean, list: number, now: number, wall: number): void {
  const sas = s.sas;
  let first = true;
  for (let k = from; k < to; k++) {
    const e = perm[k];
    if (!live(e)) continue;
    const id = ids[e];
    const kind = sas.kind[id];
    const which = kind === SaKind.IKE ? 0 : kind === SaKind.ESP_IN ? 1 : 2;
    if (which !== list) continue;
    if (!first) o.byte(0x2c);
    first = false;
    o.raw(K_SPI);
    o.hex8(sas.a[id]);
    if (kind === SaKind.IKE) o.hex8(sas.b[id]);
    o.raw(K_PACKETS); o.json(sas.pkts[id]);
    o.raw(K_BYTES); o.json(sas.bytes[id]);
    o.raw(K_AGE); o.json(Math.max(0, Math.round((wall - sas.created[id]) / 1000)));
    o.raw(K_IDLE); o.json(Math.max(0, Math.round((now - sas.last[id]) / 1000)));
    o.raw(K_FLAGS);
    const f = sas.flags[id];
    let nf = 0;
    for (let b = 0; b < 3; b++) {
      if ((f & F_BITS[b]) === 0) continue;
      if (nf++ > 0) o.byte(0x2c);
      o.raw(F_NAMES[b]);
    }
    o.byte(0x5d);
    if (kind !== SaKind.ESP_OUT) o.raw(VIA[sas.via[id]] ?? VIA[0]);
    if (kind !== SaKind.IKE) o.raw(sas.pair[id] >= 0 ? K_PAIRED : K_UNPAIRED);
    if (kind === SaKind.IKE) { o.raw(K_SPI_R); o.hex8(sas.rh[id]); o.hex8(sas.rl[id]); o.byte(0x22); }
    o.byte(0x7d);
  }
}
