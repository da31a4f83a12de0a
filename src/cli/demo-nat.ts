/**
 * The NAT section of `sluice demo` (`npm start`): four IPsec clients behind one public address
 * talk raw ESP (IP protocol 50) to one server at the same time.
 *
 *   c1..c4 192.168.1.11-14 ─ br0 [gw] wan0 203.0.113.1 ─ 203.0.113.10 [server]
 *
 * 1. Plain kernel MASQUERADE: conntrack tracks ESP by addresses only, so only one client gets
 *    through (the others' packets fail conntrack insertion, `conntrack -S` insert_failed grows).
 * 2. The same clients through sluice (SPI-keyed NAT, `sluice rules --apply` next to the same
 *    MASQUERADE): every client negotiates (cleartext IKE headers) at the same instant and decrypts
 *    every reply; `sluice sa` lists the mappings.
 * Peers are the scapy scripts of the namespace tests (test/netns/fixtures/esp_peer.py: real ESP,
 * AES-CBC + HMAC-SHA1-96), so "decrypted" means decrypted with that client's own key.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Lab, Namespace } from '../lab/lab';
import { sleep } from '../lab/lab';
import { SluiceProcess, SLUICE_MAIN } from '../lab/sluice';

const PEER = resolve(__dirname, '../../../test/netns/fixtures/esp_peer.py');
const PY = '/usr/bin/python3';
const N = 4;
const COUNT = 20;
const SERVER = '203.0.113.10';

interface PeerResult { sent: number; good: number; misrouted: number; bad: number }

/** Why the NAT demo cannot run (scapy or the peer script missing), or false. */
export function natDemoSkipReason(): string | false {
  if (!existsSync(PY)) return `${PY} missing (the demo peers use scapy)`;
  if (!existsSync(PEER)) return `${PEER} missing (run from the source tree)`;
  return false;
}

async function runPeers(server: Namespace, clients: Namespace[], clientArgs: string[], serverS: number): Promise<PeerResult[]> {
  const sv = server.spawn([PY, PEER, 'server', String(serverS)]);
  await sleep(700); // scapy import
  const outs = await Promise.all(clients.map((c, k) =>
    c.exec([PY, PEER, 'client', String(k + 1), SERVER, String(COUNT), ...clientArgs], { timeoutMs: 30000, allowFail: true })));
  await sv.exited;
  return outs.map((o) => {
    try { return JSON.parse(o.stdout.trim().split('\n').pop() || '') as PeerResult; } catch { return { sent: 0, good: 0, misrouted: 0, bad: 0 }; }
  });
}

function table(rs: PeerResult[], say: (s: string) => void): void {
  say('  client         sent  replies decrypted  misrouted');
  rs.forEach((r, k) => say(`  192.168.1.${11 + k}  ${String(r.sent).padStart(4)}  ${String(r.good).padStart(17)}  ${String(r.misrouted).padStart(9)}  ${r.good === r.sent && r.misrouted === 0 ? 'ok' : 'FAILED'}`));
}

/**
 * Runs the NAT demo inside `lab` (namespaces are created here and removed by lab.cleanup()).
 * Returns true when sluice carried every client and MASQUERADE did not (the point of the demo).
 */
export async function natDemo(lab: Lab, say: (s: string) => void = (s) => process.stdout.write(`${s}\n`)): Promise<boolean> {
  const skip = natDemoSkipReason();
  if (skip) { say(`NAT demo skipped: ${skip}`); return false; }
  say('\n== ESP NAT: 4 IPsec clients, one public address, one server ==');
  const gw = lab.ns('natgw');
  const server = lab.ns('natsv');
  const clients: Namespace[] = [];
  for (let i = 1; i <= N; i++) {
    const c = lab.ns(`natc${i}`);
    await lab.link(c, 'eth0', gw, `lan${i}`);
    await c.sh(`ip addr add 192.168.1.${10 + i}/24 dev eth0 && ip route add default via 192.168.1.1`);
    clients.push(c);
  }
  await lab.bridge(gw, 'br0', clients.map((_, k) => `lan${k + 1}`));
  await lab.link(gw, 'wan0', server, 'eth0');
  await gw.sh(`ip addr add 192.168.1.1/24 dev br0 && ip addr add 203.0.113.1/24 dev wan0
    sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0
    iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE`);
  await server.sh(`ip addr add ${SERVER}/24 dev eth0`);
  say('lab: c1..c4 192.168.1.11-14 — gw 203.0.113.1 — server 203.0.113.10; raw ESP (protocol 50), scapy peers');

  say('\n-- 1. kernel MASQUERADE only (iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE) --');
  const masq = await runPeers(server, clients, ['--no-ike'], 4);
  table(masq, say);
  const ct = (await gw.sh('conntrack -S 2>/dev/null || true')).match(/insert_failed=\d+/g) ?? [];
  const insertFailed = ct.reduce((a, s) => a + Number(s.split('=')[1]), 0);
  say(`  conntrack -S: insert_failed=${insertFailed} (conntrack keys ESP by addresses only: one client owns the flow)`);

  say('\n-- 2. sluice SPI-keyed NAT (same MASQUERADE kept for everything else) --');
  const nat = {
    public: ['203.0.113.1'], wan_interface: 'wan0', lan_interfaces: ['br0'], servers: [SERVER], queue: 0,
    journal: { path: join(lab.dir, 'nat.journal') },
  };
  const yaml = `queues:\n  - num: 0\n    fail_open: false\nnat: ${JSON.stringify(nat)}\nlog:\n  level: warn\n`;
  const file = SluiceProcess.write(lab, 'nat-demo.yaml', yaml);
  await gw.exec([process.execPath, SLUICE_MAIN, 'rules', '--apply', '-c', file]);
  say('  gw: sluice rules --apply -c nat.yaml   (raw CT --notrack, mangle NFQUEUE, FORWARD accepts)');
  const sl = await SluiceProcess.start(lab, gw, yaml, { name: 'sluice-nat' });
  try {
    const at = (Date.now() / 1000 + 2).toFixed(3);
    const via = await runPeers(server, clients, ['--at', at], 7);
    say('  all 4 clients start IKE_SA_INIT + IKE_AUTH at the same instant, then 20 ESP packets each');
    table(via, say);
    const held = (await sl.counter('nat.held'));
    const [win, reply, elim] = await Promise.all(['nat.window_learned', 'nat.learned_reply', 'nat.learned_elimination'].map((c) => sl.counter(c)));
    say(`  inbound SPIs learned: ${win} in a window, ${reply} as a probe's reply, ${elim} by elimination; ${held} packets held meanwhile (docs/nat.md)`);
    say('\n$ sluice sa');
    const r = await gw.exec([process.execPath, SLUICE_MAIN, 'sa', '-s', sl.socket], { allowFail: true });
    say((r.stdout || r.stderr).replace(/\n$/, ''));
    const masqFailed = masq.some((x) => x.good !== x.sent || x.misrouted > 0);
    const sluiceOk = via.every((x) => x.sent === COUNT && x.good === COUNT && x.misrouted === 0);
    say(`\nNAT demo: MASQUERADE ${masqFailed ? 'failed as expected' : 'unexpectedly worked'}; sluice ${sluiceOk ? 'carried all 4 clients, 0 misrouted' : 'FAILED'}`);
    return masqFailed && sluiceOk;
  } finally {
    await sl.stop();
  }
}
