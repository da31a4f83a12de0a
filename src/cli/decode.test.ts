import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { decodeCommand } from './decode';
import { CAPTURES, capturedPackets } from '../../test/kit/packet';
import { readCapture } from '../packet/pcap';
import { toHex } from '../packet/bytes';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function run(args: string[]): Promise<{ code: number; lines: Obj[]; out: string; err: string }> {
  let out = '', err = '';
  const code = await decodeCommand(args, (l) => { out += `${l}\n`; }, (l) => { err += `${l}\n`; });
  const lines = code === 0 && !args.includes('--help') ? out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Obj) : [];
  return { code, lines, out, err };
}

// Source: test/captures/ike-esp-natt.pcap (strongSwan 5.9.8 in lab namespaces, make-ipsec.sh).
test('strongSwan capture: IKE_SA_INIT, IKE_AUTH behind the marker, ESP-in-UDP SPIs', async () => {
  const { code, lines } = await run([join(CAPTURES, 'ike-esp-natt.pcap')]);
  assert.equal(code, 0);
  assert.equal(lines.length, 14);
  const [init, resp, auth, , esp] = lines as [Obj, Obj, Obj, Obj, Obj];
  assert.equal(init.link.type, 'ethernet');
  assert.equal(init.ipv4.src, '192.0.2.1');
  assert.deepEqual(init.udp.sport, 500);
  assert.equal(init.kind, 'ike');
  assert.equal(init.ike.exchange, 'IKE_SA_INIT');
  assert.equal(init.ike.ispi, '96ea5448fd1408cf');
  assert.deepEqual(init.ike.flags, ['initiator']);
  assert.deepEqual(init.ike.payloads.map((p: Obj) => p.type), ['SA', 'KE', 'Nonce', 'Notify', 'Notify', 'Notify', 'Notify', 'Notify']);
  assert.equal(init.ike.payloads[1].group, 'MODP_2048');
  assert.equal(resp.ike.rspi, 'ebc1c8e2be1eb533');
  assert.deepEqual(resp.ike.flags, ['response']);
  assert.equal(auth.ike.exchange, 'IKE_AUTH');
  assert.equal(auth.ike.nonEspMarker, true);
  assert.equal(auth.ike.encrypted, true);
  assert.deepEqual(auth.ike.payloads, [{ type: 'SK', firstInner: 'IDi', length: 272 }]);
  assert.equal(esp.kind, 'esp-in-udp');
  assert.deepEqual(esp.esp, { spi: '0x0511ba01', seq: 1, length: 88, encap: 'udp' });
  for (const l of lines) assert.equal(l.invalid, undefined, JSON.stringify(l.invalid));
});

// Source: test/captures/dhcp-inform-ack.pcap (scapy INFORM, dnsmasq 2.90 ACK; make-dhcp.sh).
test('DHCP capture: INFORM options 55/60/61 and the ACK routes of 121 and 249', async () => {
  const { lines } = await run([join(CAPTURES, 'dhcp-inform-ack.pcap')]);
  const [inf, ack] = lines as [Obj, Obj];
  assert.equal(inf.dhcp.messageType, 'DHCPINFORM');
  const opt = (m: Obj, code: number): Obj => m.dhcp.options.find((o: Obj) => o.code === code);
  assert.equal(opt(inf, 60).value, 'MSFT 5.0');
  assert.deepEqual(opt(inf, 61), { code: 61, name: 'client-id', type: 1, value: '02000000000c' });
  assert.ok(opt(inf, 55).value.includes(249));
  assert.equal(ack.dhcp.messageType, 'DHCPACK');
  const routes = [{ destination: '10.20.0.0/16', router: '10.9.0.1' }, { destination: '192.168.77.0/24', router: '10.9.0.254' },
    { destination: '0.0.0.0/0', router: '10.9.0.1' }];
  assert.deepEqual(opt(ack, 121).value, routes);
  assert.deepEqual(opt(ack, 249).value, routes);
  assert.equal(ack.udp.checksumOk, false, 'dnsmasq\'s reply was captured before checksum offload filled it');
});

test('crafted capture (LINKTYPE_RAW): keepalive, IKEv1, encrypted IKEv1, and two invalid packets with reasons', async () => {
  const { lines } = await run([join(CAPTURES, 'crafted.pcap')]);
  assert.deepEqual(lines.map((l) => l.kind), ['nat-keepalive', 'ike', 'ike', 'other', 'other']);
  assert.equal(lines[1]!.ike.exchange, 'Main Mode');
  assert.equal(lines[2]!.ike.encrypted, true);
  assert.deepEqual(lines[3]!.invalid, { layer: 'ike', reason: 'truncated' });
  assert.deepEqual(lines[4]!.invalid, { layer: 'udp-4500', reason: 'truncated' });
});

test('--hex: raw IP, ethernet, bad hex, and an invalid IP header', async () => {
  const ike = capturedPackets('ike-esp-natt.pcap')[0]!.ip;
  let r = await run(['--hex', toHex(ike)]);
  assert.equal(r.lines[0]!.ike.exchange, 'IKE_SA_INIT');
  const frame = [...readCapture(require('node:fs').readFileSync(join(CAPTURES, 'ike-esp-natt.pcap')))][4]!.data;
  r = await run(['--link', 'ethernet', '--hex', toHex(frame)]);
  assert.equal(r.lines[0]!.esp.spi, '0x0511ba01');
  r = await run(['--hex', '45 00 00']);
  assert.deepEqual(r.lines[0]!.invalid, { layer: 'ipv4', reason: 'truncated' });
  r = await run(['--hex', 'zz']);
  assert.equal(r.code, 2);
});

function pcapng(linktype: number, frames: Uint8Array[]): Uint8Array {
  const parts: number[] = [];
  const u32 = (v: number): void => { parts.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24); };
  const u16 = (v: number): void => { parts.push(v & 0xff, v >>> 8); };
  u32(0x0a0d0d0a); u32(28); u32(0x1a2b3c4d); u16(1); u16(0); u32(0xffffffff); u32(0xffffffff); u32(28);
  // IDB with if_tsresol = 9 (ns)
  u32(1); u32(32); u16(linktype); u16(0); u32(0); u16(9); u16(1); parts.push(9, 0, 0, 0); u16(0); u16(0); u32(32);
  for (const f of frames) {
    const pad = (4 - (f.length % 4)) % 4;
    const len = 32 + f.length + pad;
    u32(6); u32(len); u32(0); u32(0); u32(1_500_000_000); u32(f.length); u32(f.length);
    parts.push(...f, ...new Array(pad).fill(0));
    u32(len);
  }
  return Uint8Array.from(parts);
}

test('pcapng with LINUX_SLL2 and LINUX_SLL frames', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-decode-'));
  try {
    const ip = capturedPackets('dhcp-inform-ack.pcap')[1]!.ip;
    const sll2 = new Uint8Array(20 + ip.length);
    sll2.set([0x08, 0x00, 0, 0, 0, 0, 0, 7, 0, 1, 4, 6, 2, 0, 0, 0, 0, 5, 0, 0]); sll2.set(ip, 20);
    writeFileSync(join(dir, 'a.pcapng'), pcapng(276, [sll2]));
    let r = await run([join(dir, 'a.pcapng')]);
    assert.equal(r.code, 0);
    assert.equal(r.lines[0]!.link.type, 'linux-sll2');
    assert.equal(r.lines[0]!.link.ifindex, 7);
    assert.equal(r.lines[0]!.time, 1.5);
    assert.equal(r.lines[0]!.dhcp.messageType, 'DHCPACK');
    const sll = new Uint8Array(16 + ip.length);
    sll.set([0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 5, 0, 0, 0x08, 0x00]); sll.set(ip, 16);
    writeFileSync(join(dir, 'b.pcapng'), pcapng(113, [sll]));
    r = await run([join(dir, 'b.pcapng')]);
    assert.equal(r.lines[0]!.link.type, 'linux-sll');
    assert.equal(r.lines[0]!.kind, 'dhcp');
    writeFileSync(join(dir, 'bad'), 'not a capture');
    r = await run([join(dir, 'bad')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /not a pcap/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--help explains; no arguments is a usage error', async () => {
  const h = await run(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.out, /usage: sluice decode/);
  assert.match(h.out, /pcapng/);
  const u = await run([]);
  assert.equal(u.code, 2);
});

test('malformed captures: a clear error naming the byte offset and exit 1 (never a DataView RangeError, never exit 0)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-decode-'));
  try {
    const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
    const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
    const shb = Buffer.concat([u32(0x0a0d0d0a), u32(28), u32(0x1a2b3c4d), u16(1), u16(0), Buffer.alloc(8, 0xff), u32(28)]);
    const idb = Buffer.concat([u32(1), u32(20), u16(101), u16(0), u32(65535), u32(20)]);
    const pcapHdr = Buffer.concat([u32(0xa1b2c3d4), u16(2), u16(4), u32(0), u32(0), u32(65535), u32(101)]);
    const ip = Buffer.from('4500001c000100004011f8cb0a0000010a00000200350035000800000000', 'hex').subarray(0, 28);
    const rec = Buffer.concat([u32(1), u32(0), u32(ip.length), u32(ip.length), ip]);
    const cases: [string, Buffer, RegExp][] = [
      ['16-byte EPB at the end', Buffer.concat([shb, idb, u32(6), u32(16), u32(0), u32(16)]), /pcapng block at byte offset 48: 16-byte block of type 6 is shorter than its 32-byte minimum/],
      ['pcapng cut inside a block header', Buffer.concat([shb, idb, u32(6)]), /pcapng block at byte offset 48: truncated block header \(4 of at least 12 bytes\)/],
      ['pcapng block running past the end', Buffer.concat([shb, idb, u32(6), u32(64), u32(0)]), /byte offset 48: block length 64 runs past the end/],
      ['pcapng trailing length differs', Buffer.concat([shb, idb.subarray(0, 16), u32(24)]), /byte offset 28: trailing block length 24 differs from 20/],
      ['pcap truncated record header', Buffer.concat([pcapHdr, rec, Buffer.alloc(7)]), /record 1 at byte offset 68: truncated record header \(7 of 16 bytes\)/],
      ['pcap record past the end', Buffer.concat([pcapHdr, rec.subarray(0, 30)]), /record 0 at byte offset 24: captured length 28 runs past the end of the file \(14 bytes left\)/],
      ['pcap header cut', pcapHdr.subarray(0, 10), /truncated pcap header: 10 bytes, 24 needed \(at byte offset 0\)/],
    ];
    for (const [name, bytes, want] of cases) {
      const f = join(dir, `${name.replace(/\W+/g, '-')}.pcap`);
      writeFileSync(f, bytes);
      const r = await run([f]);
      assert.equal(r.code, 1, `${name}: exit ${r.code} ${r.err}`);
      assert.match(r.err, want, name);
    }
    // A well-formed file still decodes: the packet before a truncated header is printed first.
    const ok = join(dir, 'ok.pcap');
    writeFileSync(ok, Buffer.concat([pcapHdr, rec]));
    assert.equal((await run([ok])).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
