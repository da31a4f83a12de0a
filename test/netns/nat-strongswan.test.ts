/**
 * strongSwan through sluice's SPI-keyed NAT: 3 IKEv2 road warriors behind one public address, one
 * server. Real charon daemons (kernel-libipsec: IKE_SA_INIT on UDP 500, IKE_AUTH and ESP-in-UDP on
 * 4500 — 5.9.8's libipsec forces UDP encapsulation, so this file exercises IKE + ESP-in-UDP; raw ESP
 * is in nat-esp.test.ts).
 *
 *   c1..c3 192.168.1.11-13 (vips 10.99.0.x) ─ br0 [gw + sluice] wan0 203.0.113.1 ─ 203.0.113.10 [sv, 10.2.0.1]
 *
 * Checks: a capture on the public side shows every client's IKE leaving from public:500 and
 * public:4500 (no port remapping); every client pings through its tunnel; `swanctl --rekey` on all
 * clients at once and then a server-side rekey of all three CHILD_SAs keep the pings flowing with 0
 * misrouted: every client's inbound SPIs (as charon lists them) are mapped by sluice to that client
 * and to no other, and no ping is lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { labSkipReason, sleep, until, type Proc } from '../../src/lab/lab';
import { Charon, ikev2PskClient, ikev2PskServer, ipsecSkipReason } from '../../src/lab/ipsec';
import { readCapture, stripLink } from '../../src/packet/pcap';
import { Classified, classify, Kind } from '../../src/packet/classify';
import { ipv4ToString as numberToIpv4 } from '../../src/packet/bytes';
import { applyNatRules, natSection, natTopo, natYaml, PUBLIC, SERVER } from './fixtures/nat-lab';

const N = 3;
const PINGS = 120;
const INTERVAL = 0.1;

function skip(): string | false {
  const r = labSkipReason() || ipsecSkipReason();
  if (r) return r;
  if (!existsSync(resolve(__dirname, '../../src/io/nfqueue.js'))) return 'NFQUEUE binding not built';
  return false;
}

const hex16 = (hi: number, lo: number): string => (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');

/** Outbound UDP 500/4500 from the public address in a capture: source port → IKE initiator SPIs seen on it. */
function publicPorts(file: string): { bad: string[]; ports: Map<string, Set<number>>; espInUdp: number } {
  const info = new Classified();
  const ports = new Map<string, Set<number>>();
  const bad: string[] = [];
  let espInUdp = 0;
  for (const rec of readCapture(new Uint8Array(readFileSync(file)))) {
    const link = stripLink(rec.linktype, rec.data);
    if (link.error) continue;
    classify(info, rec.data, link.ipOffset, rec.data.length - link.ipOffset);
    if (info.reason !== 0 || info.proto !== 17 || numberToIpv4(info.src) !== PUBLIC) continue;
    if (info.sport !== info.dport || (info.sport !== 500 && info.sport !== 4500)) bad.push(`${numberToIpv4(info.src)}:${info.sport} > ${numberToIpv4(info.dst)}:${info.dport}`);
    if (info.kind === Kind.IKE) {
      const spi = hex16(info.ikeIspiHi, info.ikeIspiLo);
      if (!ports.has(spi)) ports.set(spi, new Set());
      ports.get(spi)!.add(info.sport);
    } else if (info.kind === Kind.ESP_IN_UDP) espInUdp++;
  }
  return { bad, ports, espInUdp };
}

function pingResult(p: Proc): { sent: number; received: number } {
  const m = p.stdout.match(/(\d+) packets transmitted, (\d+) (packets )?received/);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}

type SaList = { host: string; ike: { spi: string }[]; esp_in: { spi: string; packets: number }[]; esp_out: { spi: string }[] }[];

test('strongSwan: 3 IKEv2 clients through one public address, ports 500/4500 kept, pings through every tunnel across simultaneous client rekeys and a server rekey, 0 misrouted', { skip: skip() }, async (t) => {
  const { SluiceProcess } = await import('../../src/lab/sluice');
  const tp = await natTopo('nats', N);
  t.after(() => tp.lab.cleanup());
  const nat = natSection(tp.lab);
  const yaml = natYaml(nat);
  t.diagnostic(`kernel rules from ${await applyNatRules(tp.gw, nat, SluiceProcess.write(tp.lab, 'rules.yaml', yaml))}`);
  const sl = await SluiceProcess.start(tp.lab, tp.gw, yaml);
  const pcap = join(tp.lab.dir, 'wan.pcap');
  const dump = tp.gw.spawn(['tcpdump', '-ni', 'wan0', '-U', '--immediate-mode', '-w', pcap, 'udp port 500 or udp port 4500']);
  await dump.waitFor(/listening on/);

  await tp.sv.sh('ip addr add 10.2.0.1/24 dev lo');
  const sv = await Charon.start(tp.lab, tp.sv, 'sv');
  await sv.load(ikev2PskServer({ local: SERVER, pool: '10.99.0.0/24', localTs: '10.2.0.0/24' }));
  const clients = await Promise.all(tp.clients.map(async (ns, k) => {
    // Until the tunnel is up nothing may reach 10.2.0.0/24 around it (the user MASQUERADE would carry it).
    await ns.sh('ip route add unreachable 10.2.0.0/24');
    const c = await Charon.start(tp.lab, ns, `c${k + 1}`);
    await c.load(ikev2PskClient({ id: `c${k + 1}@lab`, local: `192.168.1.${11 + k}`, remote: SERVER, remoteTs: '10.2.0.0/24' }));
    return c;
  }));

  // All three initiate at once; each starts pinging as soon as its tunnel is up (the server's first
  // ESP on the new SPI closes that host's learning window and releases the next host's IKE_AUTH).
  const t0 = Date.now();
  const pingers: Proc[] = await Promise.all(clients.map(async (c, k) => {
    await c.initiate('c');
    return tp.clients[k]!.spawn(['ping', '-n', '-c', String(PINGS), '-i', String(INTERVAL), '-W', '2', '10.2.0.1']);
  }));
  t.diagnostic(`all 3 established in ${Date.now() - t0} ms`);
  await sleep(2500);

  // Every client rekeys its CHILD_SA at the same moment.
  const spisBefore = await Promise.all(clients.map(async (c) => (await c.sas()).flatMap((s) => s.children.map((ch) => ch.spiIn))));
  await Promise.all(clients.map((c) => c.rekeyChild('c')));
  await until(async () => {
    const now = await Promise.all(clients.map(async (c) => (await c.sas()).flatMap((s) => s.children.filter((ch) => ch.state === 'INSTALLED').map((ch) => ch.spiIn))));
    return now.every((spis, k) => spis.length > 0 && spis.every((s) => !spisBefore[k]!.includes(s)));
  }, 20000, 'client rekeys done').catch(async (e) => {
    for (const c of [...clients, sv]) t.diagnostic(`${c.name}: ${JSON.stringify(await c.sas())}\n${c.log().slice(-2500)}`);
    t.diagnostic(`sluice: ${JSON.stringify((await sl.stats()).counters.filter((c) => c.value !== 0 && c.name.startsWith('nat.')))}`);
    throw e;
  });
  t.diagnostic(`client rekeys done at +${Date.now() - t0} ms`);
  await sleep(2000);

  // The server rekeys all three CHILD_SAs (config name 's') at once.
  const spisMid = await Promise.all(clients.map(async (c) => (await c.sas()).flatMap((s) => s.children.map((ch) => ch.spiIn))));
  await sv.rekeyChild('s');
  await until(async () => {
    const now = await Promise.all(clients.map(async (c) => (await c.sas()).flatMap((s) => s.children.filter((ch) => ch.state === 'INSTALLED').map((ch) => ch.spiIn))));
    return now.every((spis, k) => spis.length > 0 && spis.every((s) => !spisMid[k]!.includes(s)));
  }, 20000, 'server rekeys done');
  t.diagnostic(`server rekeys done at +${Date.now() - t0} ms`);

  await Promise.all(pingers.map((p) => p.exited));
  const pings = pingers.map(pingResult);
  const list = await sl.request('stage', { stage: 'nat', name: 'sa-list', args: {} }) as SaList;
  const st = await sl.stats();
  const nz = st.counters.filter((c) => c.value !== 0 && c.name.startsWith('nat.')).map((c) => `${c.name}=${c.value}`).join(' ');
  t.diagnostic(`pings ${JSON.stringify(pings)}; counters ${nz}`);
  t.diagnostic(`sluice sa: ${list.map((g) => `${g.host} ike ${g.ike.map((i) => i.spi).join(',')} in ${g.esp_in.map((e) => `${e.spi}(${e.packets})`).join(',')} out ${g.esp_out.map((e) => e.spi).join(',')}`).join(' | ')}`);
  await dump.stop('SIGINT');

  // No port remapping: every packet from the public address left from 500 or 4500 to the same port,
  // and every client's IKE SA used both public:500 (IKE_SA_INIT) and public:4500 (from IKE_AUTH on).
  const cap = publicPorts(pcap);
  assert.deepEqual(cap.bad, [], 'remapped source ports on the public side');
  assert.ok(cap.espInUdp > 0, 'ESP-in-UDP seen on the public side');
  const clientSas = await Promise.all(clients.map((c) => c.sas()));
  for (const [k, sas] of clientSas.entries()) {
    assert.equal(sas.length, 1, `client ${k + 1}: one IKE SA`);
    const ports = cap.ports.get(sas[0]!.spiI);
    assert.ok(ports?.has(500) && ports.has(4500), `client ${k + 1}: IKE SA ${sas[0]!.spiI} from public:500 and public:4500 (saw ${[...(ports ?? [])].join(',')})`);
  }

  // Pings: every one answered through its own tunnel, across both rekeys.
  for (const [k, p] of pings.entries()) {
    assert.equal(p.sent, PINGS, `client ${k + 1}: ping ran`);
    assert.equal(p.received, p.sent, `client ${k + 1}: ${p.received}/${p.sent} pings answered`);
  }

  // 0 misrouted: each client's inbound SPIs (charon's view) are mapped to that client only.
  for (const [k, sas] of clientSas.entries()) {
    const host = `192.168.1.${11 + k}`;
    const mine = new Set(list.filter((g) => g.host === host).flatMap((g) => g.esp_in.map((e) => e.spi)));
    const others = new Set(list.filter((g) => g.host !== host).flatMap((g) => g.esp_in.map((e) => e.spi)));
    const spis = [...new Set([...spisBefore[k]!, ...spisMid[k]!, ...sas.flatMap((s) => s.children.map((c) => c.spiIn))])];
    for (const spi of spis) {
      assert.ok(mine.has(spi), `client ${k + 1}: inbound SPI ${spi} mapped to ${host} (sluice has ${[...mine].join(',')})`);
      assert.ok(!others.has(spi), `client ${k + 1}: inbound SPI ${spi} also mapped to another host`);
    }
  }
  assert.equal(await sl.counter('nat.ambiguous'), 0, 'no ambiguous SPI');
  assert.equal(await sl.counter('nat.unknown_spi'), 0, 'no unknown SPI');
  await Promise.all([...clients, sv].map((c) => c.stop()));
  await sl.stop();
});
