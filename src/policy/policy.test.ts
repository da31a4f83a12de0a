import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicyConfigInput } from './config';
import { policyConfigSchema } from './schema';
import { createPolicyStage, policyCheck, policyRules } from './index';
import { Verdict } from '../engine/stage';
import { ctxOf, Decision, fakeInterfaces, fakeServices, type PktSpec } from '../../test/kit/steer';

const PRE = 0, INPUT = 1, FWD = 2, OUT = 3;
// extif = public side (203.0.113.1), wirif = LAN 10.0.1.0/24, ipsec0 = tunnel (VPN 10.0.2.0/24)
const ifaces = fakeInterfaces({ lo: 1, extif: 2, wirif: 3, ipsec0: 4 });

/** Seed 3: default drop, IKE on extif, VPN ↔ LAN only through the tunnel, DNS for VPN clients via tunnel. */
const seed3: PolicyConfigInput = {
  default: 'discard',
  address_sets: { vpn: ['10.0.2.0/24'], lan: ['10.0.1.0/24'] },
  tunnels: [{ name: 'vpn', interfaces: ['ipsec0'], remote: ['@vpn'] }],
  audit: { every: 2, max_per_second: 100 },
  policies: [
    { name: 'ike-in', match: { hook: 'input', in: 'extif', proto: 'udp', dst: '203.0.113.1', sport: [500, 4500], dport: [500, 4500] }, action: 'bypass' },
    { name: 'ike-out', match: { hook: 'output', out: 'extif', proto: 'udp', src: '203.0.113.1', sport: [500, 4500], dport: [500, 4500] }, action: 'bypass' },
    { name: 'vpn-to-lan', match: { hook: 'forward', src: '@vpn', dst: '@lan' }, action: 'protect', tunnel: 'vpn' },
    { name: 'lan-to-vpn', match: { hook: 'forward', src: '@lan', dst: '@vpn' }, action: 'protect', tunnel: 'vpn' },
    { name: 'dns-from-vpn', match: { hook: 'input', src: '@vpn', dst: '10.0.1.1', proto: 'udp', sport: '1024:65535', dport: 53 }, action: 'protect', tunnel: 'vpn' },
    { name: 'dns-to-vpn', match: { hook: 'output', src: '10.0.1.1', dst: '@vpn', proto: 'udp', sport: 53 }, action: 'protect', tunnel: 'vpn' },
    { name: 'no-telnet', match: { proto: 'tcp', dport: 23 }, action: 'discard' },
  ],
};

function setup(input: PolicyConfigInput) {
  const lines: { fields: Record<string, unknown>; msg: string }[] = [];
  const st = createPolicyStage(policyConfigSchema.parse(input), { log: (fields, msg) => lines.push({ fields, msg }) });
  const svc = fakeServices(ifaces);
  st.init!(svc);
  const run = (p: PktSpec) => { const d = new Decision(); st.process(ctxOf(p), d); return d; };
  return { st, svc, lines, run };
}

test('seed 3: VPN ↔ LAN only through the tunnel; spoofed VPN source on the public side discarded and counted', () => {
  const { run, svc, st, lines } = setup(seed3);
  const vpnToLan: PktSpec = { hook: FWD, indev: 4, outdev: 3, src: '10.0.2.5', dst: '10.0.1.7', proto: 6, dport: 80 };
  assert.equal(run(vpnToLan).verdict, Verdict.CONTINUE);
  assert.equal(run({ hook: FWD, indev: 3, outdev: 4, src: '10.0.1.7', dst: '10.0.2.5', proto: 6, sport: 80 }).verdict, Verdict.CONTINUE);
  // The same packet arriving on extif: spoofed.
  const spoof = run({ ...vpnToLan, indev: 2 });
  assert.equal(spoof.verdict, Verdict.DROP);
  assert.equal(spoof.reason, svc.reasons.get('policy.spoofed'));
  // LAN → VPN routed out extif (no tunnel): unprotected, counted on the policy.
  const leak = run({ hook: FWD, indev: 3, outdev: 2, src: '10.0.1.7', dst: '10.0.2.5', proto: 6, sport: 80 });
  assert.equal(leak.verdict, Verdict.DROP);
  assert.equal(leak.reason, svc.reasons.get('policy.lan-to-vpn'));
  const s = st.stats!() as { policies: Record<string, { discards: number }>; spoofed: number };
  assert.equal(s.spoofed, 1);
  assert.equal(s.policies['lan-to-vpn']!.discards, 1);
  assert.equal(lines.length, 2, 'first discard of each kind is logged');
  assert.equal(lines[0]!.fields.policy, 'spoof_check');
  assert.equal(lines[0]!.fields.in, 'extif');
  assert.match(lines[1]!.msg, /lan-to-vpn \(unprotected\) 10\.0\.1\.7:80 -> 10\.0\.2\.5:0/);
});

test('seed 3: DNS from VPN clients only via the tunnel; IKE bypasses; the rest default-discards', () => {
  const { run, svc } = setup(seed3);
  const dns: PktSpec = { hook: INPUT, indev: 4, src: '10.0.2.9', dst: '10.0.1.1', proto: 17, sport: 40000, dport: 53 };
  assert.equal(run(dns).verdict, Verdict.CONTINUE);
  assert.equal(run({ hook: OUT, outdev: 4, src: '10.0.1.1', dst: '10.0.2.9', proto: 17, sport: 53, dport: 40000 }).verdict, Verdict.CONTINUE);
  assert.equal(run({ hook: OUT, outdev: 2, src: '10.0.1.1', dst: '10.0.2.9', proto: 17, sport: 53, dport: 40000 }).verdict, Verdict.DROP);
  assert.equal(run({ ...dns, indev: 2 }).reason, svc.reasons.get('policy.spoofed'));
  assert.equal(run({ hook: INPUT, indev: 2, src: '198.51.100.7', dst: '203.0.113.1', proto: 17, sport: 500, dport: 500 }).verdict, Verdict.CONTINUE);
  const other = run({ hook: INPUT, indev: 2, src: '198.51.100.7', dst: '203.0.113.1', proto: 6, dport: 22 });
  assert.equal(other.verdict, Verdict.DROP);
  assert.equal(other.reason, svc.reasons.get('policy.default'));
  const telnet = run({ hook: FWD, indev: 3, outdev: 2, src: '10.0.1.7', dst: '192.0.2.1', proto: 6, dport: 23 });
  assert.equal(telnet.reason, svc.reasons.get('policy.no-telnet'));
});

test('audit lines are sampled (every Nth per policy) and rate limited', () => {
  const { run, lines } = setup({ ...seed3, audit: { every: 10, max_per_second: 3 } });
  for (let i = 0; i < 100; i++) run({ hook: FWD, indev: 3, outdev: 2, src: '10.0.1.7', dst: '192.0.2.1', proto: 6, dport: 23 });
  assert.equal(lines.length, 3, 'every 10th of 100 = 10 candidates, capped at 3 per second');
  assert.deepEqual(lines.map((l) => l.fields.count), [1, 11, 21]);
});

test('without spoof_check a spoof is still caught by a PROTECT policy (and counted as spoofed)', () => {
  const { run, svc } = setup({ ...seed3, spoof_check: false });
  const d = run({ hook: FWD, indev: 2, outdev: 3, src: '10.0.2.5', dst: '10.0.1.7', proto: 6, dport: 80 });
  assert.equal(d.reason, svc.reasons.get('policy.spoofed'));
  // A spoofed source not covered by any protect policy: default discard, not "spoofed".
  const e = run({ hook: PRE, indev: 2, src: '10.0.2.5', dst: '203.0.113.1', proto: 17, dport: 9 });
  assert.equal(e.reason, svc.reasons.get('policy.default'));
});

test('config errors and check warnings', () => {
  assert.throws(() => policyConfigSchema.parse({ policies: [{ name: 'p', action: 'protect' }] }), /protect needs tunnel/);
  assert.throws(() => policyConfigSchema.parse({ policies: [{ name: 'p', action: 'protect', tunnel: 'x' }] }), /unknown tunnel x/);
  assert.throws(() => policyConfigSchema.parse({ tunnels: [{ name: 't', interfaces: ['ipsec0'], remote: ['@nope'] }] }), /unknown address set/);
  const w = policyCheck(policyConfigSchema.parse({ ...seed3, policies: [...seed3.policies!, { name: 'dup', match: { proto: 'tcp', dport: 23, src: '10.0.0.0/8' }, action: 'bypass' }] }));
  assert.deepEqual(w, ['policy dup (#8) can never match: policy no-telnet (#7) above it matches every packet it would']);
});

test('policyRules: filter NFQUEUE for every packet of the chosen hooks, loopback left out', () => {
  const rs = policyRules(policyConfigSchema.parse({ ...seed3, capture: { queue: 4 } }));
  assert.deepEqual(rs.iptables.map((r) => `${r.table} ${r.chain} ${r.args.join(' ')}`), [
    'filter INPUT ! -i lo -j NFQUEUE --queue-num 4',
    'filter FORWARD -j NFQUEUE --queue-num 4',
    'filter OUTPUT ! -o lo -j NFQUEUE --queue-num 4',
  ]);
});

test('policies use port and interface sets; a tunnel remote can be an address set from the same section', () => {
  const { run } = setup({
    default: 'discard',
    address_sets: { vpn: ['10.0.2.0/24'] },
    port_sets: { ike: [500, 4500] },
    interface_sets: { outside: ['extif', 'wan*'] },
    tunnels: [{ name: 'vpn', interfaces: ['ipsec0'], remote: ['@vpn'] }],
    policies: [
      { name: 'ike', match: { hook: 'input', in: '@outside', proto: 'udp', dport: '@ike' }, action: 'bypass' },
      { name: 'vpn-in', match: { hook: 'input', src: '@vpn' }, action: 'protect', tunnel: 'vpn' },
    ],
  });
  assert.equal(run({ hook: INPUT, indev: 2, proto: 17, sport: 4500, dport: 4500 }).verdict, Verdict.CONTINUE);
  assert.equal(run({ hook: INPUT, indev: 2, proto: 17, sport: 53, dport: 53 }).verdict, Verdict.DROP);
  assert.equal(run({ hook: INPUT, indev: 3, proto: 17, dport: 500 }).verdict, Verdict.DROP);
  assert.equal(run({ hook: INPUT, indev: 4, proto: 6, src: '10.0.2.9', dport: 22 }).verdict, Verdict.CONTINUE);
  assert.equal(run({ hook: INPUT, indev: 2, proto: 6, src: '10.0.2.9', dport: 22 }).verdict, Verdict.DROP);
});
