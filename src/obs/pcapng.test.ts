/**
 * The pcapng writer against two readers: the project's own (src/packet/pcap.ts) and, where
 * installed (scripts/setup.sh installs it), tshark — comments, bytes, lengths and timestamps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pcapngHeader, pcapngPacket, PCAPNG_LINKTYPE_RAW } from './pcapng';
import { readCapture } from '../packet/pcap';
import { CAPTURES, capturedPackets } from '../../test/kit/packet';

const hasTshark = spawnSync('tshark', ['--version']).status === 0;
const skipInCi = (why: string): string | false => (process.env.CI === 'true' ? false : why);

function file(): { bytes: Uint8Array; packets: Uint8Array[]; comments: string[] } {
  // Source: test/captures/ike-esp-natt.pcap, packets #1 (IKE_SA_INIT, 490 bytes) and #5 (ESP-in-UDP).
  const all = capturedPackets('ike-esp-natt.pcap').map((c) => c.ip);
  const packets = [all[0]!, all[4]!];
  const comments = ['q0 forward eth0>eth1 ike | steer: rule=ike → continue | accept mark 0x10', 'odd length ✓ ünïcode'];
  const parts = [pcapngHeader(), pcapngPacket(packets[0]!, 1700000000123.456, packets[0]!.length, comments[0]),
    pcapngPacket(packets[1]!, 1700000001000, packets[1]!.length + 10, comments[1]), pcapngPacket(packets[1]!, 1700000002000, packets[1]!.length)];
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { bytes.set(p, o); o += p.length; }
  return { bytes, packets, comments };
}

test('own reader: raw IP packets, their comments, lengths and µs timestamps', () => {
  const { bytes, packets, comments } = file();
  const recs = [...readCapture(bytes)];
  assert.equal(recs.length, 3);
  assert.equal(recs[0]!.linktype, PCAPNG_LINKTYPE_RAW);
  assert.deepEqual([...recs[0]!.data], [...packets[0]!]);
  assert.deepEqual(recs.map((r) => r.comments), [[comments[0]], [comments[1]], undefined]);
  assert.equal(recs[1]!.origLength, packets[1]!.length + 10);
  assert.equal(recs[0]!.time, 1700000000.123456);
});

test('tshark reads the file and shows the comments', { skip: hasTshark ? false : skipInCi('tshark not installed (scripts/setup.sh installs it)') }, () => {
  const { bytes, comments } = file();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pcapng-'));
  const path = join(dir, 'tap.pcapng');
  writeFileSync(path, bytes);
  const out = execFileSync('tshark', ['-r', path, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.number', '-e', 'ip.src', '-e', 'udp.dstport', '-e', 'frame.comment'],
    { encoding: 'utf8', env: { ...process.env, HOME: dir } });
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 3);
  assert.equal(lines[0], `1|192.0.2.1|500|${comments[0]}`);
  assert.equal(lines[1], `2|192.0.2.1|4500|${comments[1]}`);
  assert.equal(lines[2], '3|192.0.2.1|4500|');
});

test('the lab captures decode the same after a round trip through the writer', () => {
  for (const name of ['ike-esp-natt.pcap', 'crafted.pcap']) {
    const packets = capturedPackets(name).map((c) => c.ip);
    const parts = [pcapngHeader(), ...packets.map((p, i) => pcapngPacket(p, 1000 * i, p.length, `#${i + 1}`))];
    const out = Buffer.concat(parts);
    const back = [...readCapture(out)];
    assert.equal(back.length, packets.length, name);
    back.forEach((r, i) => { assert.deepEqual([...r.data], [...packets[i]!]); assert.deepEqual(r.comments, [`#${i + 1}`]); });
  }
  assert.ok(CAPTURES);
});
