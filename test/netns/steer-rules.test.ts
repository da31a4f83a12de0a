/**
 * Generated kernel rules against a real kernel, through the CLI (`sluice rules`), for every steer /
 * policy example and for a config that uses every capture feature (lists, ranges, negation, globs,
 * SPI, marks, length):
 *   - `iptables-restore --test --noflush` accepts the `--iptables` output;
 *   - `--apply` installs everything, and a second `--apply` changes nothing;
 *   - `--remove` leaves iptables, `ip rule` and the routing tables as they were before;
 *   - sluice's rules live in SLUICE-* chains, jumped to from the built-in chains.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { cpSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { Lab, labSkipReason, type Namespace } from './lab';
import { SluiceProcess, SLUICE_MAIN } from '../../src/lab/sluice';
import { EXAMPLES } from './steer-helpers';

const skip = labSkipReason();
if (skip) console.log(`# skipping steer-rules: ${skip}`);

const EVERYTHING = `queues:
  - num: 20
steer:
  address_sets: { vpn: [10.0.2.0/24, 10.0.3.0/24], mgmt: [10.99.0.0/16] }
  capture: { queue: 20, hooks: [prerouting, output] }
  route_tables: { first_table: 120, first_priority: 1200, mark_mask: "0xf000" }
  local_routes:
    - { dst: 10.1.0.0/16, dev: ipsec0, src: 10.0.1.1 }
  rules:
    - name: lists
      match: { in: [eth0, "ppp*"], src: "@vpn", proto: [tcp, udp], dport: [53, "1000:2000", 8080] }
      action: accept
    - name: negated
      match: { hook: forward, not: { src: "@mgmt", dport: 22, in: eth+ } }
      action: { mark: "0x5/0xf" }
    - name: negated-tcp
      match: { hook: forward, proto: tcp, not: { dport: [22, 23] } }
      action: { mark: "0x5/0xf" }
    - name: esp
      match: { proto: esp, esp_spi: "0x100:0x1ff", dst: 203.0.113.1 }
      action: continue
    - name: ping
      match: { proto: icmp, icmp_type: echo-request, length: "0:128", mark: "0x1/0x1" }
      action: { drop: "no big pings" }
    - name: via-gw
      match: { hook: output, proto: tcp, dport: 23 }
      action: { route_via: { dev: eth0, via: 192.0.2.254 } }
    - name: via-tunnel
      match: { hook: prerouting, in: eth0, dhcp_type: ack }
      action: { route_via: { dev: ipsec0 } }
`;

/**
 * iptables rules, ip rules and routes, comparable across runs. A table that holds no rule and only
 * built-in chains with policy ACCEPT is left out: iptables-nft creates such a table on the first -A
 * and keeps it after the last -D, and it filters nothing (so "as they were" holds for traffic).
 */
async function snapshot(ns: Namespace): Promise<string> {
  const save = await ns.sh('iptables-save');
  const tables = save.split(/^(?=\*)/m).filter((t) => t.startsWith('*'))
    .map((t) => t.replace(/\[\d+:\d+\]/g, '').replace(/^#.*\n/gm, ''))
    .filter((t) => /^-A /m.test(t) || /^:\S+ (DROP|-)/m.test(t));
  const routing = await ns.sh('ip rule show; echo ==; ip route show table all | grep -v "^local\\|^broadcast\\|^multicast\\|fe80\\|ff00" || true');
  return `${tables.join('')}==\n${routing}`;
}

async function cli(lab: Lab, ns: Namespace, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return ns.exec(['env', `SLUICE_RT_TABLES=${lab.path(`${ns.name}.rt_tables`)}`, process.execPath, SLUICE_MAIN, 'rules', ...args], { allowFail: true });
}

const examples = readdirSync(EXAMPLES).filter((f) => /^(steer|policy)-.*\.yaml$/.test(f));

test('generated rules: iptables-restore --test accepts them; --apply twice changes nothing; --remove restores', { skip, timeout: 120000 }, async (t) => {
  assert.ok(examples.length >= 3, `steer/policy examples found: ${examples.join(', ')}`);
  const lab = await Lab.create('srules');
  t.after(() => lab.cleanup());
  const cases: [string, string][] = [...examples.map((f): [string, string] => [f, readFileSync(join(EXAMPLES, f), 'utf8')]), ['everything', EVERYTHING]];
  for (const [name, text] of cases) {
    const ns = lab.ns(name.replace(/\W+/g, '').slice(0, 8));
    // The interfaces the configs name, with the addresses their routes need.
    const peer = lab.ns(`p${name.replace(/\W+/g, '').slice(0, 6)}`);
    await lab.link(ns, 'eth0', peer, 'eth0');
    await lab.link(ns, 'ipsec0', peer, 'ipsec0');
    await ns.sh('ip addr add 192.0.2.1/24 dev eth0 && ip addr add 10.0.1.1/24 dev ipsec0');
    const file = SluiceProcess.write(lab, `${name}.cfg.yaml`, text);
    // Set and map files are named relative to the config: bring them along.
    if (/\bfile:/.test(text)) cpSync(join(EXAMPLES, 'sets'), join(dirname(file), 'sets'), { recursive: true });

    const restore = await cli(lab, ns, ['-c', file, '--iptables']);
    assert.equal(restore.code, 0, restore.stderr);
    const tested = await ns.exec(['iptables-restore', '--test', '--noflush'], { input: restore.stdout, allowFail: true });
    assert.equal(tested.code, 0, `${name}: iptables-restore --test: ${tested.stderr}\n${restore.stdout}`);

    const before = await snapshot(ns);
    const a1 = await cli(lab, ns, ['-c', file, '--apply']);
    assert.equal(a1.code, 0, `${name}: ${a1.stderr}`);
    const once = await snapshot(ns);
    assert.notEqual(once, before, `${name}: --apply changed something`);
    assert.match(once, /sluice/, `${name}: rules carry sluice comments`);
    const a2 = await cli(lab, ns, ['-c', file, '--apply']);
    assert.equal(a2.code, 0, a2.stderr);
    assert.match(a2.stdout, /^nothing to apply/, `${name}: second apply: ${a2.stdout}`);
    assert.equal(await snapshot(ns), once, `${name}: the second --apply changed nothing`);
    const rm = await cli(lab, ns, ['-c', file, '--remove']);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(await snapshot(ns), before, `${name}: --remove restored the tables`);
    assert.equal(existsSync(lab.path(`${ns.name}.rt_tables`)), false, `${name}: rt_tables entries removed`);
    if (name === 'everything') {
      assert.match(once, /fwmark 0x1000\/0xf000 lookup 120/);
      assert.match(once, /iif lo lookup 99/);
      assert.match(once, /default via 192\.0\.2\.254 dev eth0 table 120/);
      // not: {dport: 22} also matches non-TCP/UDP packets: the capture leaves the port out (wider).
      assert.match(once, /-A SLUICE-FORWARD ! -s 10\.99\.0\.0\/16 ! -i eth\+ -m comment --comment "sluice: steer: rule negated \(capture\) #[0-9a-f]{8}"/);
      assert.match(once, /-A SLUICE-OUTPUT -p tcp -m tcp --dport 23 .*--queue-num 20/);
      assert.match(once, /^-A OUTPUT -m comment --comment "sluice: jump to SLUICE-OUTPUT [^"]*" -j SLUICE-OUTPUT$/m);
      assert.match(once, /-A SLUICE-FORWARD -p tcp -m multiport ! --dports 22,23 /);
    }
  }
});
