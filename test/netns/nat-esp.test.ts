/**
 * Raw ESP (IP protocol 50) from 4 LAN clients to one server through one public address.
 *
 *   cl1..cl4 192.168.1.11-14 ─ br0 192.168.1.1 [gw] wan0 203.0.113.1 ─ 203.0.113.10 [sv]
 *
 * Control: with kernel MASQUERADE the clients fail (conntrack tracks ESP by addresses only, so ESP
 * for one client's SPI reaches another, or a client's packets are dropped at insert). With sluice's
 * SPI-keyed NAT every reply is decrypted by the right client, 0 misrouted, and a kill -9 + restart
 * keeps every mapping (the clients continue without any new IKE).
 * Peers: test/netns/fixtures/esp_peer.py (scapy; cleartext IKE headers, real ESP).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Lab, labSkipReason, type Namespace } from '../../src/lab/lab';
import { natConfigSchema } from '../../src/nat/config';
import { natRules } from '../../src/nat/rules';

const PEER = resolve(__dirname, '../../../test/netns/fixtures/esp_peer.py');
const N = 4;
const COUNT = 20;

interface Topo { lab: Lab; gw: Namespace; sv: Namespace; clients: Namespace[] }

async function topo(prefix: string): Promise<Topo> {
  const lab = await Lab.create(prefix);
  const gw = lab.ns('gw');
  const sv = lab.ns('sv');
  const clients: Namespace[] = [];
  const members: string[] = [];
  for (let i = 1; i <= N; i++) {
    const c = lab.ns(`c${i}`);
    await lab.link(c, 'eth0', gw, `lan${i}`);
    await c.sh(`ip addr add 192.168.1.${10 + i}/24 dev eth0 && ip route add default via 192.168.1.1`);
    clients.push(c);
    members.push(`lan${i}`);
  }
  await lab.bridge(gw, 'br0', members);
  await lab.link(gw, 'wan0', sv, 'eth0');
  await gw.sh(`ip addr add 192.168.1.1/24 dev br0 && ip addr add 203.0.113.1/24 dev wan0
    sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0`);
  await sv.sh('ip addr add 203.0.113.10/24 dev eth0');
  return { lab, gw, sv, clients };
}

interface ClientResult { sent: number; good: number; misrouted: number; bad: number; ike_retx: number }

async function exchange(t: Topo, clientArgs: string[], serverS = 8): Promise<{ clients: ClientResult[]; server: { ike: number; esp: number } }> {
  const server = t.sv.spawn(['/usr/bin/python3', PEER, 'server', String(serverS)]);
  t.lab.track(server);
  await new Promise((r) => setTimeout(r, 700)); // scapy import
  const runs = t.clients.map((c, i) => c.exec(['/usr/bin/python3', PEER, 'client', String(i + 1), '203.0.113.10', String(COUNT), ...clientArgs], { timeoutMs: 60000, allowFail: true }));
  const outs = await Promise.all(runs);
  await server.exited;
  const clients = outs.map((o) => JSON.parse(o.stdout.trim().split('\n').pop() || '{}') as ClientResult);
  return { clients, server: JSON.parse(server.stdout.trim().split('\n').pop() || '{}') };
}

test('control: kernel MASQUERADE misroutes or drops raw ESP of several clients', { skip: labSkipReason() }, async (t) => {
  const tp = await topo('natc');
  t.after(() => tp.lab.cleanup());
  await tp.gw.sh('iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE && conntrack -F 2>/dev/null || true');
  const r = await exchange(tp, ['--no-ike'], 5);
  const stats = await tp.gw.sh('conntrack -S 2>/dev/null || true');
  t.diagnostic(`masquerade: ${JSON.stringify(r.clients)} server=${JSON.stringify(r.server)} | ${stats.replace(/\s+/g, ' ').slice(0, 200)}`);
  const perfect = r.clients.every((c) => c.good === COUNT && c.misrouted === 0);
  assert.equal(perfect, false, 'MASQUERADE unexpectedly handled 4 raw-ESP clients (the control must fail)');
});

/** Why sluice cannot run its NAT here yet (the engine's NFQUEUE binding or the CLI wiring is missing). */
function sluiceSkip(): string | false {
  const lab = labSkipReason();
  if (lab) return lab;
  const main = resolve(__dirname, '../../src/cli/main.js');
  if (!existsSync(main)) return 'dist/src/cli/main.js missing (build first)';
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const p = require(resolve(__dirname, '../../src/cli/pipeline.js')) as { AREAS: { key: string }[] };
    if (!p.AREAS.some((a) => a.key === 'nat')) return 'the CLI pipeline does not build the nat stage yet (src/cli/pipeline.ts AREAS)';
    if (!existsSync(resolve(__dirname, '../../src/io/nfqueue.js'))) return 'NFQUEUE binding (src/io/nfqueue) not built yet';
  } catch (e) {
    return `CLI pipeline not loadable: ${(e as Error).message}`;
  }
  return false;
}

test('sluice NAT: 4 raw-ESP clients through one public address, 0 misrouted; kill -9 + restart keeps mappings', { skip: sluiceSkip() }, async (t) => {
  const { SluiceProcess } = await import('../../src/lab/sluice');
  const tp = await topo('nate');
  t.after(() => tp.lab.cleanup());
  const nat = {
    public: ['203.0.113.1'], wan_interface: 'wan0', lan_interfaces: ['br0'], servers: ['203.0.113.10'], queue: 5,
    journal: { path: join(tp.lab.dir, 'nat.journal') },
  };
  const cfg = natConfigSchema.parse(nat);
  // The user's own MASQUERADE stays for everything else: sluice's flows are untracked and skip it.
  await tp.gw.sh('iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE');
  for (const r of natRules(cfg).iptables) {
    await tp.gw.exec(['iptables', '-t', r.table, '-A', r.chain, ...r.args]);
  }
  const yaml = `queues:\n  - num: 5\n    fail_open: false\nnat: ${JSON.stringify(nat)}\n`;
  let sl = await SluiceProcess.start(tp.lab, tp.gw, yaml);
  const r = await exchange(tp, []);
  t.diagnostic(`sluice: ${JSON.stringify(r.clients)} server=${JSON.stringify(r.server)}`);
  for (const [i, c] of r.clients.entries()) {
    assert.equal(c.misrouted, 0, `client ${i + 1} got another client's ESP`);
    assert.equal(c.good, COUNT, `client ${i + 1} decrypted ${c.good}/${COUNT} replies`);
  }
  const list = await sl.request('stage', { stage: 'nat', name: 'sa-list', args: {} }) as { host: string; esp_in: unknown[] }[];
  assert.equal(list.length, N);
  for (const g of list) assert.equal(g.esp_in.length, 1, `${g.host}: one learned inbound SPI`);
  // kill -9 mid-state, restart: the same SPIs keep working with no IKE at all.
  await sl.kill9();
  sl = await SluiceProcess.start(tp.lab, tp.gw, yaml, { name: 'sluice2' });
  const r2 = await exchange(tp, ['--no-ike']);
  t.diagnostic(`after restart: ${JSON.stringify(r2.clients)} server=${JSON.stringify(r2.server)}`);
  assert.equal(r2.server.ike, 0, 'no IKE on the wire after the restart');
  for (const [i, c] of r2.clients.entries()) {
    assert.equal(c.misrouted, 0);
    assert.equal(c.good, COUNT, `client ${i + 1} after restart: ${c.good}/${COUNT}`);
  }
  await sl.stop();
});
