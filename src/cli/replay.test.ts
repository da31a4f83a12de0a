/**
 * `sluice replay` over the lab captures (test/captures/README.md says how each was made) with real
 * configs: the trace line of every packet, steer rule names, NAT mappings and rewrites, DHCP scope.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { replayCommand } from './replay';
import { CAPTURES } from '../../test/kit/packet';

const EXAMPLES = resolve(CAPTURES, '../../examples');

async function replay(config: string, ...args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const code = await replayCommand(['-c', config, ...args], (l) => lines.push(l));
  assert.equal(code, 0);
  return lines;
}

function cfg(text: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'sluice-replay-test-')), 'c.yaml');
  writeFileSync(f, text);
  return f;
}

const STEER = cfg(`queues:
  - num: 5
steer:
  rules:
    - name: ike
      match: { kind: ike }
      action: { mark: 0x10/0xff }
    - name: drop-initiator-esp
      match: { kind: esp-in-udp, esp_spi: 0x0511ba01 }
      action: drop
`);

test('steer over the strongSwan capture: one line per packet, with rule, mark and verdict', async () => {
  const lines = await replay(STEER, join(CAPTURES, 'ike-esp-natt.pcap'));
  assert.equal(lines.length, 14);
  assert.match(lines[0]!, /^#1 \S+ q5 forward ->- udp 192\.0\.2\.1:500 > 192\.0\.2\.2:500 ike IKE_SA_INIT initiator ispi 96ea5448fd1408cf .* \| steer: rule=ike mark=0x10\/0xff → continue \| accept mark 0x10$/);
  assert.match(lines[4]!, /^#5 .* esp-in-udp spi 0x0511ba01 seq 1 \| steer: rule=drop-initiator-esp → drop\(steer\.drop-initiator-esp\) \| drop\(steer\.drop-initiator-esp\)$/);
  assert.match(lines[5]!, /^#6 .* esp-in-udp spi 0x3a4d2d8d seq 1 \| steer: rule=\(none\) default=continue → continue \| accept$/);
});

test('--filter prints only matching packets; --json gives the fields, --layers the decode JSON', async () => {
  const lines = await replay(STEER, '--filter', 'kind=esp-in-udp !esp_spi=0x0511ba01', '--json', '--layers', join(CAPTURES, 'ike-esp-natt.pcap'));
  const objs = lines.map((l) => JSON.parse(l) as { n: number; verdict: string; stages: { stage: string; explain: { rule: string } }[]; layers: { esp: { spi: string } } });
  assert.deepEqual(objs.map((o) => o.n), [6, 8, 10]);
  assert.deepEqual(objs.map((o) => o.layers.esp.spi), ['0x3a4d2d8d', '0x3a4d2d8d', '0x3a4d2d8d']);
  assert.ok(objs.every((o) => o.verdict === 'accept' && o.stages[0]!.explain.rule === '(none)'));
});

test('NAT (examples/nat.yaml): the initiator is the LAN host; mappings, learning state and the source rewrite', async () => {
  const lines = await replay(join(EXAMPLES, 'nat.yaml'), '--filter', 'src=192.0.2.1', join(CAPTURES, 'ike-esp-natt.pcap'));
  assert.match(lines[0]!, /^#1 .* q0 postrouting .* ike IKE_SA_INIT .* \| nat: mapping=192\.0\.2\.1→\(new host\) rewritten → accept \| accept rewrite src 192\.0\.2\.1→203\.0\.113\.1$/);
  assert.match(lines[1]!, /^#3 .* IKE_AUTH .* \| nat: mapping=192\.0\.2\.1→203\.0\.113\.1 spi=96ea5448fd1408cf learned=seen rewritten → accept \| accept rewrite src 192\.0\.2\.1→203\.0\.113\.1$/);
  assert.match(lines[2]!, /^#5 .* esp-in-udp spi 0x0511ba01 seq 1 \| nat: mapping=192\.0\.2\.1→203\.0\.113\.1 sa=new/);
  assert.match(lines[3]!, /^#7 .* esp-in-udp spi 0x0511ba01 seq 2 \| nat: mapping=192\.0\.2\.1→203\.0\.113\.1 spi=0511ba01 /);
});

test('DHCP INFORM over the dnsmasq capture: the scope that answers, on the interface given', async () => {
  const c = cfg(`queues:
  - num: 0
dhcp:
  inform:
    queue: 0
    interfaces: [ppp*]
    scopes:
      - name: l2tp
        match: { interfaces: [ppp*] }
        server_id: 10.9.0.1
        dns_servers: [10.0.0.2]
`);
  const lines = await replay(c, '--in', 'ppp0', '--hook', 'input', join(CAPTURES, 'dhcp-inform-ack.pcap'));
  assert.match(lines[0]!, /^#1 \S+ q0 input ppp0>- udp 10\.9\.0\.50:68 > 255\.255\.255\.255:67 dhcp DHCPINFORM .* \| dhcp: roles=inform scope=l2tp → answered \| answered$/);
  const other = await replay(c, '--in', 'eth0', '--hook', 'input', join(CAPTURES, 'dhcp-inform-ack.pcap'));
  assert.match(other[0]!, /dhcp: roles=none scope=\(none\) → continue \| accept$/, 'not an inform interface: passed on');
});

test('bad usage: no capture, unknown hook, queue not configured', async () => {
  await assert.rejects(replayCommand(['-c', STEER], () => {}), /one capture file/);
  await assert.rejects(replayCommand(['-c', STEER, '--hook', 'sideways', 'x.pcap'], () => {}), /--hook/);
  await assert.rejects(replayCommand(['-c', STEER, '--queue', '9', join(CAPTURES, 'crafted.pcap')], () => {}), /queue 9 is not in the config/);
});
