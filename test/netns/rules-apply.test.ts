/**
 * `sluice rules --apply / --check / --remove` against the kernel, in namespaces of their own:
 *   1. A host firewall whose built-in chains start with a terminal rule (mangle FORWARD `-j ACCEPT`,
 *      filter FORWARD `-j DROP`): with the jump appended (`--position last`) sluice sees no packet
 *      and none is forwarded; with the jump at rule 1 (the default) a running `sluice run` sees each
 *      datagram in both tables and all of them arrive. `--check` names the shadowing DROP before.
 *   2. Rollback: a config whose route names a device that does not exist fails at `ip route add`,
 *      after its iptables transactions went in; everything goes back to the state the previous
 *      config left (that config's chains and rules, not an empty table), and the rt_tables file too.
 *   3. Drift: a rule deleted from sluice's chain, one added to it, a DROP inserted before a jump and
 *      a missing `ip rule` are each reported, exit 1; `--apply` repairs exactly that, exit 0 after.
 *   4. nftables: `auto` picks nft on a host with a native nft table and falls back to iptables where
 *      the kernel refuses the ruleset (this kernel has no nft_queue); `--nft --apply` of a queueing
 *      config fails with that reason and leaves nothing behind. The nft backend's apply / check /
 *      rollback / remove run live on the same config's rules with each queue statement replaced
 *      by `accept` (the only thing this kernel cannot load).
 *   5. IPv6: `--check` warns loudly that the policy stage does not see IPv6 when the namespace has a
 *      global IPv6 address, and without "WARNING" when IPv6 is disabled there.
 *   6. A firewall in legacy iptables (iptables is the nf_tables variant): sluice writes with
 *      iptables-legacy, so its jump sits in the chain that holds the DROP.
 * NOT exercised: a packet queued by an nft `queue` statement (no nft_queue here), ip6tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Lab, labSkipReason, type Namespace } from './lab';
import { SluiceProcess, SLUICE_MAIN } from '../../src/lab/sluice';
import { UdpSink, sendUdp } from '../../src/lab/traffic';
import { loadConfig } from '../../src/config/load';
import { collectRules } from '../../src/cli/pipeline';
import { applyNft, checkNft, defaultRun, detectBackend, removeNftTable, ApplyError, type Runner, type RuleSet } from '../../src/rules';

function nftMissing(): string | false {
  try { execFileSync('nft', ['--version'], { stdio: 'ignore' }); return false; } catch { return 'nft not installed (Debian package nftables)'; }
}
const skip = labSkipReason() || nftMissing();
if (skip) {
  console.log(`# skipping rules-apply: ${skip}`);
  if (process.env.CI === 'true') throw new Error(`rules-apply cannot run under CI: ${skip}`);
}

async function cli(lab: Lab, ns: Namespace, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return ns.exec(['env', `SLUICE_RT_TABLES=${lab.path(`${ns.name}.rt_tables`)}`, process.execPath, SLUICE_MAIN, 'rules', ...args], { allowFail: true });
}

/** iptables rules (counters out), ip rules and routes: comparable across runs. */
async function snapshot(ns: Namespace): Promise<string> {
  const save = (await ns.sh('iptables-save')).replace(/\[\d+:\d+\]/g, '').replace(/^#.*\n/gm, '');
  const tables = save.split(/^(?=\*)/m).filter((t) => /^-A /m.test(t) || /^:\S+ (DROP|-)/m.test(t));
  const routing = await ns.sh('ip rule show; echo ==; ip route show table all | grep -v "^local\\|^broadcast\\|^multicast\\|fe80\\|ff00" || true');
  return `${tables.join('')}==\n${routing}`;
}

/** Runs commands inside a namespace (for the library functions). */
function inNs(ns: Namespace): Runner {
  return (cmd, args, input) => defaultRun('ip', ['netns', 'exec', ns.name, cmd, ...args], input);
}

const QUEUE_BOTH = `queues:
  - num: 7
    capture:
      - { table: mangle, chain: forward, proto: udp, dport: 9999 }
      - { table: filter, chain: forward, proto: udp, dport: 9999 }
`;

test('a terminal ACCEPT/DROP first in the host chains: the jump at rule 1 sees every packet, appended it sees none', { skip, timeout: 120000 }, async (t) => {
  const lab = await Lab.create('rpos');
  t.after(() => lab.cleanup());
  const client = lab.ns('cl'), gw = lab.ns('gw'), server = lab.ns('sv');
  await lab.link(client, 'eth0', gw, 'lan0');
  await lab.link(gw, 'wan0', server, 'eth0');
  await client.sh('ip addr add 192.168.51.2/24 dev eth0 && ip route add default via 192.168.51.1');
  await gw.sh('ip addr add 192.168.51.1/24 dev lan0 && ip addr add 203.0.113.1/24 dev wan0 && sysctl -qw net.ipv4.ip_forward=1');
  await server.sh('ip addr add 203.0.113.10/24 dev eth0 && ip route add default via 203.0.113.1');
  // The host's firewall: both chains end every packet at their first rule.
  await gw.sh('iptables -t mangle -A FORWARD -j ACCEPT && iptables -A FORWARD -j DROP');
  const sluice = await SluiceProcess.start(lab, gw, QUEUE_BOTH, { name: 'pos' });
  t.after(() => sluice.stop());
  const received = async (): Promise<number> => Number((await sluice.stats()).queues[0]!.received ?? 0);
  const send = async (): Promise<number> => {
    const sink = await UdpSink.start(server, 9999);
    await sendUdp(client, '203.0.113.10', 9999, 20, { pps: 200 });
    return (await sink.finish()).received;
  };

  const last = await cli(lab, gw, ['-c', sluice.configFile, '--apply', '--position', 'last']);
  assert.equal(last.code, 0, last.stderr);
  assert.match((await gw.sh('iptables -S FORWARD')), /^-A FORWARD -j DROP\n-A FORWARD -m comment .* -j SLUICE-FORWARD$/m);
  const shadowed = await cli(lab, gw, ['-c', sluice.configFile, '--check', '--position', 'last']);
  assert.equal(shadowed.code, 1, shadowed.stdout);
  assert.match(shadowed.stdout, /^DRIFT filter FORWARD: rule 1 before the jump ends the chain for EVERY packet \(sluice sees none\): -A FORWARD -j DROP$/m);
  assert.equal(await send(), 0, 'the host DROP shadows an appended jump');
  assert.equal(await received(), 0, 'sluice saw nothing');

  const first = await cli(lab, gw, ['-c', sluice.configFile, '--apply']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /filter FORWARD: inserted at 1: jump to SLUICE-FORWARD/);
  assert.match((await gw.sh('iptables -t mangle -S FORWARD')), /^-A FORWARD -m comment .* -j SLUICE-FORWARD\n-A FORWARD -j ACCEPT$/m);
  assert.equal(await send(), 20, 'every datagram crosses: sluice accepted it before the host DROP');
  assert.equal(await received(), 40, 'sluice saw each datagram twice: mangle and filter FORWARD');
  const ok = await cli(lab, gw, ['-c', sluice.configFile, '--check']);
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.stdout, /^in sync/m);
  const rm = await cli(lab, gw, ['-c', sluice.configFile, '--remove']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(await gw.sh('iptables -S FORWARD; iptables -t mangle -S FORWARD'), '-P FORWARD ACCEPT\n-A FORWARD -j DROP\n-P FORWARD ACCEPT\n-A FORWARD -j ACCEPT\n');
});

const BASE = `queues:
  - num: 21
    capture:
      - { table: mangle, chain: prerouting, in: eth0 }
      - { table: filter, chain: input, proto: udp, dport: 53 }
steer:
  capture: { queue: 21, hooks: [prerouting] }
  rules:
    - name: web
      match: { in: eth0, proto: tcp, dport: 80 }
      action: { route_via: { dev: eth0, via: 192.0.2.254 } }
`;
const BROKEN = `queues:
  - num: 22
    capture:
      - { table: raw, chain: prerouting, in: eth0 }
      - { table: mangle, chain: prerouting, in: eth1 }
steer:
  capture: { queue: 22, hooks: [forward] }
  rules:
    - name: nowhere
      match: { proto: udp, dport: 5353 }
      action: { route_via: { dev: nosuch0 } }
`;

async function gatewayNs(lab: Lab, name: string): Promise<Namespace> {
  const ns = lab.ns(name);
  const peer = lab.ns(`p${name}`);
  await lab.link(ns, 'eth0', peer, 'eth0');
  await ns.sh('ip addr add 192.0.2.1/24 dev eth0');
  return ns;
}

test('--apply is transactional: a route to a missing device puts back the previous config\'s rules', { skip, timeout: 120000 }, async (t) => {
  const lab = await Lab.create('rtx');
  t.after(() => lab.cleanup());
  const ns = await gatewayNs(lab, 'gw');
  await ns.sh('iptables -A INPUT -j DROP');
  const base = SluiceProcess.write(lab, 'base.yaml', BASE);
  const broken = SluiceProcess.write(lab, 'broken.yaml', BROKEN);
  const a = await cli(lab, ns, ['-c', base, '--apply']);
  assert.equal(a.code, 0, a.stderr);
  const before = await snapshot(ns);
  const rt = readFileSync(lab.path(`${ns.name}.rt_tables`), 'utf8');
  const b = await cli(lab, ns, ['-c', broken, '--apply']);
  assert.notEqual(b.code, 0);
  assert.match(b.stderr, /ip route add default dev nosuch0 table 100: Cannot find device "nosuch0"/);
  // filter: the broken config needs no filter rules, so its transaction had deleted the base's SLUICE-INPUT.
  assert.match(b.stderr, /\nrolled back: table filter put back; table mangle put back; table raw put back; \S+rt_tables put back\n/);
  assert.doesNotMatch(b.stderr, /ROLLBACK FAILED/);
  assert.equal(await snapshot(ns), before, 'iptables, ip rules and routes as the base config left them');
  assert.equal(readFileSync(lab.path(`${ns.name}.rt_tables`), 'utf8'), rt);
  const check = await cli(lab, ns, ['-c', base, '--check']);
  assert.equal(check.code, 0, check.stdout);
  const rm = await cli(lab, ns, ['-c', base, '--remove']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(await ns.sh('iptables-save | grep -c SLUICE || true'), '0\n');
  assert.equal(existsSync(lab.path(`${ns.name}.rt_tables`)), false);
});

test('--check reports each kind of drift and exits 1; --apply repairs it', { skip, timeout: 120000 }, async (t) => {
  const lab = await Lab.create('rchk');
  t.after(() => lab.cleanup());
  const ns = await gatewayNs(lab, 'gw');
  const base = SluiceProcess.write(lab, 'base.yaml', BASE);
  assert.equal((await cli(lab, ns, ['-c', base, '--apply'])).code, 0);
  assert.equal((await cli(lab, ns, ['-c', base, '--check'])).code, 0);
  const wanted = (await ns.sh('iptables -t mangle -S SLUICE-PREROUTING')).split('\n').filter((l) => l.startsWith('-A'));
  assert.equal(wanted.length, 2, wanted.join('\n'));
  await ns.sh(`iptables -t mangle -D SLUICE-PREROUTING 2 && iptables -t mangle -A SLUICE-PREROUTING -p icmp -j ACCEPT
    iptables -I INPUT 1 -j DROP && ip rule del fwmark 0x100/0xff00 lookup 100 priority 1000`);
  const d = await cli(lab, ns, ['-c', base, '--check']);
  assert.equal(d.code, 1, d.stdout);
  const lines = d.stdout.split('\n').filter((l) => l.startsWith('DRIFT'));
  assert.equal(lines.length, 5, d.stdout);
  assert.deepEqual(lines.slice(1), [
    'DRIFT mangle SLUICE-PREROUTING: extra rule 2: -A SLUICE-PREROUTING -p icmp -j ACCEPT',
    'DRIFT filter INPUT: jump to SLUICE-INPUT is rule 2, wanted 1',
    'DRIFT filter INPUT: rule 1 before the jump ends the chain for EVERY packet (sluice sees none): -A INPUT -j DROP',
    'DRIFT ip rule: missing: ip rule add fwmark 0x100/0xff00 lookup 100 priority 1000',
  ]);
  assert.match(lines[0]!, /^DRIFT mangle SLUICE-PREROUTING: missing rule: -A SLUICE-PREROUTING .*steer: rule web \(capture\) #[0-9a-f]{8}.* -j NFQUEUE --queue-num 21/);
  assert.match(d.stdout, /^5 difference\(s\)\. `sluice rules -c \S+ --apply` makes the kernel match/m);
  const fix = await cli(lab, ns, ['-c', base, '--apply']);
  assert.equal(fix.code, 0, fix.stderr);
  assert.deepEqual(fix.stdout.trim().split('\n'), [
    'mangle: SLUICE-PREROUTING rewritten (2 rule(s))',
    'filter INPUT: removed rule 2: jump to SLUICE-INPUT',
    'filter INPUT: inserted at 1: jump to SLUICE-INPUT',
    'ip rule add fwmark 0x100/0xff00 lookup 100 priority 1000',
  ]);
  // A rule an older sluice appended straight to a built-in chain: reported, then moved out by --apply.
  await ns.sh('iptables -t mangle -A PREROUTING -i eth0 -m comment --comment "sluice: queue 21: capture" -j NFQUEUE --queue-num 21 --queue-bypass');
  const legacy = await cli(lab, ns, ['-c', base, '--check']);
  assert.equal(legacy.code, 1);
  assert.match(legacy.stdout, /^DRIFT mangle PREROUTING: rule 2 left by an older sluice in the built-in chain: -A PREROUTING -i eth0 -m comment --comment "sluice: queue 21: capture" -j NFQUEUE --queue-num 21 --queue-bypass$/m);
  const moved = await cli(lab, ns, ['-c', base, '--apply']);
  assert.equal(moved.stdout, 'mangle PREROUTING: removed rule 2 (left by an older sluice): -i eth0 -m comment --comment "sluice: queue 21: capture" -j NFQUEUE --queue-num 21 --queue-bypass\n');
  const again = await cli(lab, ns, ['-c', base, '--check']);
  assert.equal(again.code, 0, again.stdout);
  assert.equal((await ns.sh('iptables -t mangle -S SLUICE-PREROUTING')).split('\n').filter((l) => l.startsWith('-A')).join('\n'), wanted.join('\n'));
});

/** The config's netfilter rules with every queue target replaced by ACCEPT (what this kernel can load as nft). */
function withoutQueues(rs: RuleSet): RuleSet {
  return { ...rs, iptables: rs.iptables.map((r) => {
    const j = r.args.indexOf('-j');
    return r.args[j + 1] === 'NFQUEUE' ? { ...r, args: [...r.args.slice(0, j), '-j', 'ACCEPT'] } : r;
  }) };
}

test('nftables: auto backend, nft_queue refusal with nothing left, apply/check/rollback/remove live', { skip, timeout: 120000 }, async (t) => {
  const lab = await Lab.create('rnft');
  t.after(() => lab.cleanup());
  const ns = await gatewayNs(lab, 'gw');
  const run = inNs(ns);
  const base = SluiceProcess.write(lab, 'base.yaml', BASE);
  const rtPath = lab.path(`${ns.name}.rt_tables`);
  const opts = { run, rtTablesPath: rtPath };

  // Only what iptables-nft made: iptables.
  await ns.sh('iptables -A INPUT -p udp --dport 9 -j DROP');
  assert.equal(detectBackend(run, 'SLUICE', false).backend, 'iptables');
  // A native nft table: nft.
  writeFileSync(lab.path('host.nft'), 'table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 9 drop\n\t}\n}\n');
  await ns.exec(['nft', '-f', lab.path('host.nft')]);
  assert.deepEqual(detectBackend(run, 'SLUICE', false), { backend: 'nft', why: 'native nftables tables: inet filter' });
  assert.equal(detectBackend(run, 'SLUICE', true).backend, 'iptables', 'sluice chains already in iptables keep iptables');

  // The kernel refuses queue statements (no nft_queue): auto falls back, --nft --apply fails cleanly.
  const probe = await ns.exec(['nft', '-c', '-f', '-'], { input: 'table inet probe {\n\tchain c {\n\t\ttype filter hook input priority 0;\n\t\tqueue to 1\n\t}\n}\n', allowFail: true });
  const hasQueue = probe.code === 0;
  t.diagnostic(`nft queue statement loadable here: ${hasQueue}`);
  const before = await snapshot(ns);
  const check = await cli(lab, ns, ['-c', base, '--check']);
  if (hasQueue) assert.match(check.stdout, /^backend: nft \(native nftables tables: inet filter\)/);
  else {
    assert.match(check.stdout, /^backend: iptables \(native nftables tables: inet filter, but the kernel refuses the nft ruleset\)\nnote: the kernel has no nft_queue/);
    const forced = await cli(lab, ns, ['-c', base, '--nft', '--apply']);
    assert.notEqual(forced.code, 0);
    assert.match(forced.stderr, /nft -f: .*No such file or directory/s);
    assert.match(forced.stderr, /the kernel has no nft_queue \(CONFIG_NFT_QUEUE\)/);
    assert.match(forced.stderr, /rolled back: .*rt_tables put back/);
    assert.doesNotMatch((await ns.exec(['nft', 'list', 'tables'])).stdout, /sluice/);
    assert.equal(await snapshot(ns), before, 'nothing left behind');
    assert.equal(existsSync(rtPath), false);
  }

  // The nft backend itself, on everything but the queue statements.
  const rs = withoutQueues(collectRules(await loadConfig(base)));
  const first = applyNft(rs, opts);
  assert.match(first.changed.join('\n'), /nft: table inet sluice created \(3 rule\(s\)\)/);
  assert.match(first.changed.join('\n'), /ip rule add fwmark 0x100\/0xff00 lookup 100 priority 1000/);
  assert.deepEqual(applyNft(rs, opts).changed, [], 'a second apply changes nothing');
  const clean = checkNft(rs, opts);
  assert.deepEqual(clean.filter((d) => !d.warn), []);
  // The host's own input chains (priority 0, a drop rule each: iptables-nft's and the native one)
  // may drop before sluice's filter_input.
  assert.deepEqual(clean.filter((d) => d.warn).map((d) => `${d.where}: ${d.what}`), [
    'nft inet sluice filter_input: ip filter INPUT (hook input) has the same priority (0: the order is not defined); 1 drop/reject rule(s): what they match never reaches sluice',
    'nft inet sluice filter_input: inet filter input (hook input) has the same priority (0: the order is not defined); 1 drop/reject rule(s): what they match never reaches sluice']);
  const listed = (await ns.exec(['nft', 'list', 'table', 'inet', 'sluice'])).stdout;
  assert.match(listed, /chain mangle_prerouting \{/);
  assert.match((await ns.exec(['nft', 'list', 'tables'])).stdout, /table inet filter/, 'the host table stays');
  // Drift: a rule deleted by hand, one added.
  const handle = (await ns.exec(['nft', '-a', 'list', 'chain', 'inet', 'sluice', 'filter_input'])).stdout.match(/comment "sluice[^\n]*# handle (\d+)\s*$/m)![1]!;
  await ns.exec(['nft', 'delete', 'rule', 'inet', 'sluice', 'filter_input', 'handle', handle]);
  await ns.exec(['nft', 'add', 'rule', 'inet', 'sluice', 'mangle_prerouting', 'meta', 'l4proto', 'icmp', 'accept']);
  const drift = checkNft(rs, opts).filter((d) => !d.warn).map((d) => `${d.where}: ${d.what}`);
  assert.equal(drift.length, 2, drift.join('\n'));
  assert.equal(drift[0], 'nft inet sluice mangle_prerouting: extra rule untagged: meta l4proto icmp accept');
  assert.match(drift[1]!, /^nft inet sluice filter_input: missing rule #[0-9a-f]{8}: sluice queue 21: capture$/);
  applyNft(rs, opts);
  assert.deepEqual(checkNft(rs, opts).filter((d) => !d.warn), [], 'apply repaired it');
  // Rollback: a route to a missing device puts the previous table back, rule for rule.
  const good = (await ns.exec(['nft', 'list', 'table', 'inet', 'sluice'])).stdout;
  const bad: RuleSet = { ...rs, iptables: rs.iptables.slice(0, 1), ipRoutes: [...rs.ipRoutes, { args: ['default', 'dev', 'nosuch0', 'table', '130'], comment: 'x' }] };
  assert.throws(() => applyNft(bad, opts), (e: Error) => e instanceof ApplyError && /Cannot find device "nosuch0"[\s\S]*rolled back: nft table inet sluice put back/.test(e.message));
  assert.equal((await ns.exec(['nft', 'list', 'table', 'inet', 'sluice'])).stdout, good);
  // Remove (CLI: both backends and the routing).
  const rm = await cli(lab, ns, ['-c', base, '--remove']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, /nft delete table inet sluice/);
  assert.deepEqual(removeNftTable(opts), [], 'nothing left to remove');
  assert.doesNotMatch(await ns.sh('ip rule show'), /fwmark/);
});

const POLICY = `queues:
  - num: 12
    fail_open: false
policy:
  default: discard
  capture: { queue: 12 }
  policies:
    - { name: ssh, match: { hook: input, proto: tcp, dport: 22 }, action: bypass }
`;

test('IPv6: --check warns that the policy stage does not cover it, loudly when the host has IPv6', { skip, timeout: 60000 }, async (t) => {
  const lab = await Lab.create('rv6');
  t.after(() => lab.cleanup());
  const ns = await gatewayNs(lab, 'gw');
  const file = SluiceProcess.write(lab, 'policy.yaml', POLICY);
  await ns.sh('sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0 && ip -6 addr add 2001:db8:14::1/64 dev eth0 nodad');
  const loud = await cli(lab, ns, ['-c', file, '--check']);
  assert.match(loud.stdout, /^WARNING: IPv6 is not covered: the policy stage \(SPD, default discard\) sees IPv4 only, so IPv6 packets pass without it \(this host has IPv6: 2001:db8:14::1\/64 on eth0, forwarding off\)/m);
  await ns.sh('sysctl -qw net.ipv6.conf.all.disable_ipv6=1');
  const quiet = await cli(lab, ns, ['-c', file, '--check']);
  assert.match(quiet.stdout, /^IPv6 is not covered: the policy stage .*\(IPv6 is disabled on this host\)/m);
  assert.doesNotMatch(quiet.stdout, /WARNING/);
});

test('a firewall in legacy iptables: sluice\'s chains and jump go there (iptables-legacy), not into iptables-nft', { skip, timeout: 60000 }, async (t) => {
  const lab = await Lab.create('rleg');
  t.after(() => lab.cleanup());
  const ns = await gatewayNs(lab, 'gw');
  const legacy = await ns.exec(['iptables-legacy', '-A', 'FORWARD', '-j', 'DROP'], { allowFail: true });
  if (legacy.code !== 0) {
    // The kernel has no legacy ip_tables here: nothing of this test can run.
    if (process.env.CI === 'true') assert.fail(`iptables-legacy unusable: ${legacy.stderr}`);
    t.skip(`iptables-legacy unusable: ${legacy.stderr.trim()}`);
    return;
  }
  const file = SluiceProcess.write(lab, 'fwd.yaml', 'queues:\n  - num: 7\n    capture:\n      - { table: filter, chain: forward, proto: udp, dport: 9999 }\n');
  const check = await cli(lab, ns, ['-c', file, '--check']);
  assert.equal(check.code, 1);
  assert.match(check.stdout, /^backend: iptables-legacy \(legacy iptables tables are loaded \(filter\); iptables-legacy: legacy tables are loaded \(filter\) while iptables is iptables v[\d.]+ \(nf_tables\)\)$/m);
  const a = await cli(lab, ns, ['-c', file, '--apply']);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stderr, /^note: backend iptables-legacy /m);
  assert.match(await ns.sh('iptables-legacy -S FORWARD'), /^-P FORWARD ACCEPT\n-A FORWARD -m comment --comment "sluice: jump to SLUICE-FORWARD [^"]*" -j SLUICE-FORWARD\n-A FORWARD -j DROP\n$/);
  assert.doesNotMatch(await ns.sh('iptables-nft-save'), /SLUICE/, 'nothing in iptables-nft');
  assert.equal(await ns.sh('cat /proc/net/ip_tables_names'), 'filter\n', 'no other legacy table was created by listing it');
  assert.equal((await cli(lab, ns, ['-c', file, '--check'])).code, 0);
  // Chosen explicitly (what a unit without root, which cannot read /proc/net/ip_tables_names, uses).
  const forced = await cli(lab, ns, ['-c', file, '--check', '--backend', 'iptables-legacy']);
  assert.equal(forced.code, 0, forced.stdout);
  assert.match(forced.stdout, /^backend: iptables-legacy \(chosen in rules.backend \/ --backend\)$/m);
  const rm = await cli(lab, ns, ['-c', file, '--remove']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(await ns.sh('iptables-legacy -S FORWARD'), '-P FORWARD ACCEPT\n-A FORWARD -j DROP\n');
});
