import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SteerConfigInput } from './config';
import { steerConfigSchema } from './schema';
import { createSteerStage } from './index';
import { Verdict } from '../engine/stage';
import { ctxOf, ctxOfBytes, Decision, fakeInterfaces, fakeServices, type PktSpec } from '../../test/kit/steer';
import { ipv4Udp, dhcpBytes } from '../packet/build';
import { ip4 as parseIpv4 } from '../packet/bytes';

const HOOK_OUTPUT = 3, HOOK_PREROUTING = 0;
const ifaces = fakeInterfaces({ lo: 1, eth0: 2, ipsec0: 3, ppp0: 4, ppp1: 5, wlan0: 6 });

function stageOf(input: SteerConfigInput) {
  const cfg = steerConfigSchema.parse(input);
  const st = createSteerStage(cfg);
  const svc = fakeServices(ifaces);
  st.init!(svc);
  return { st, svc, run(p: PktSpec) { const d = new Decision(); st.process(ctxOf(p), d); return d; } };
}

test('seed 1: server→client DHCP leaving ipsec0 gets the mark under its mask and continues', () => {
  const { run } = stageOf({ rules: [
    { name: 'dhcp-replies-out-eth0', match: { hook: 'output', out: 'ipsec0', proto: 'udp', sport: 67, dport: 68 }, action: { mark: '0x800/0xf00' } },
  ] });
  const d = run({ proto: 17, sport: 67, dport: 68, hook: HOOK_OUTPUT, outdev: 3, mark: 0x12345 });
  assert.equal(d.verdict, Verdict.CONTINUE);
  assert.equal(d.markMask, 0xf00);
  assert.equal(d.markValue, 0x800);
  // Same packet leaving eth0, or client→server, or another hook: untouched.
  for (const p of [{ outdev: 2 }, { sport: 68, dport: 67 }, { hook: HOOK_PREROUTING }]) {
    const e = run({ proto: 17, sport: 67, dport: 68, hook: HOOK_OUTPUT, outdev: 3, ...p });
    assert.equal(e.markMask, 0, JSON.stringify(p));
  }
});

test('first match wins; accept / drop with reason / continue; default', () => {
  const { run, svc, st } = stageOf({
    default: 'drop',
    rules: [
      { name: 'ssh', match: { proto: 'tcp', dport: 22 }, action: 'accept' },
      { name: 'telnet', match: { proto: 'tcp', dport: 23 }, action: { drop: 'telnet in the clear' } },
      { name: 'tcp-rest', match: { proto: 'tcp' }, action: 'continue' },
    ],
  });
  assert.equal(run({ proto: 6, dport: 22 }).verdict, Verdict.ACCEPT);
  const t = run({ proto: 6, dport: 23 });
  assert.equal(t.verdict, Verdict.DROP);
  assert.equal(t.reason, svc.reasons.get('steer.telnet'));
  assert.equal(run({ proto: 6, dport: 80 }).verdict, Verdict.CONTINUE);
  const u = run({ proto: 17, dport: 53 });
  assert.equal(u.verdict, Verdict.DROP);
  assert.equal(u.reason, svc.reasons.get('steer.default'));
  assert.deepEqual(st.stats!(), { rules: { ssh: 1, telnet: 1, 'tcp-rest': 1 }, no_match: 1 });
});

test('addresses, named sets, port ranges, interface globs, negation', () => {
  const { run } = stageOf({
    address_sets: { vpn: ['10.0.2.0/24', '@extra'], extra: ['192.168.77.5'] },
    rules: [{
      name: 'r', action: 'accept',
      match: { in: 'ppp*', src: '@vpn', dst: ['10.0.1.0/24'], proto: 'udp', sport: '1024:65535', dport: 53, not: { dst: '10.0.1.1', out: 'eth+' } },
    }],
  });
  const ok: PktSpec = { indev: 5, outdev: 6, src: '10.0.2.9', dst: '10.0.1.7', proto: 17, sport: 40000, dport: 53 };
  assert.equal(run(ok).verdict, Verdict.ACCEPT);
  assert.equal(run({ ...ok, src: '192.168.77.5' }).verdict, Verdict.ACCEPT);
  const misses: PktSpec[] = [
    { indev: 2 }, { indev: 3 }, { src: '10.0.3.1' }, { src: '192.168.77.6' }, { dst: '10.0.1.1' }, { outdev: 2 },
    { sport: 1023 }, { dport: 54 }, { proto: 6 }, { ipVersion: 6 }, { isLaterFragment: true },
  ];
  for (const m of misses) assert.equal(run({ ...ok, ...m }).verdict, Verdict.CONTINUE, JSON.stringify(m));
});

test('application selectors: DHCP type, IKE exchange, ESP SPI range, ICMP type, kind, mark, length, hook, queue', () => {
  const { run } = stageOf({ rules: [
    { name: 'inform', match: { dhcp_type: 'inform' }, action: 'accept' },
    { name: 'init', match: { ike_exchange: ['ike_sa_init', 'main_mode'] }, action: 'accept' },
    { name: 'spi', match: { esp_spi: '0x1000:0x1fff' }, action: 'accept' },
    { name: 'ping', match: { icmp_type: 'echo-request', length: '0:100' }, action: 'accept' },
    { name: 'keepalive', match: { kind: 'nat-keepalive' }, action: 'accept' },
    { name: 'marked', match: { mark: '0x10/0xf0', hook: ['forward', 'postrouting'], queue: 3 }, action: 'accept' },
  ] });
  const rule = (p: PktSpec) => { const d = run(p); return d.verdict === Verdict.ACCEPT; };
  assert.ok(rule({ proto: 17, kind: 5, dhcpMessageType: 8 }));
  assert.ok(!rule({ proto: 17, kind: 5, dhcpMessageType: 3 }));
  assert.ok(!rule({ proto: 17, kind: 0, dhcpMessageType: 8 }), 'dhcp_type needs a valid DHCP packet');
  assert.ok(rule({ proto: 17, kind: 3, ikeExchange: 34 }));
  assert.ok(rule({ proto: 17, kind: 3, ikeExchange: 2 }));
  assert.ok(!rule({ proto: 17, kind: 3, ikeExchange: 35 }));
  assert.ok(rule({ proto: 50, kind: 1, espSpi: 0x1abc }));
  assert.ok(rule({ proto: 17, kind: 2, espSpi: 0x1000 }));
  assert.ok(!rule({ proto: 50, kind: 1, espSpi: 0x2000 }));
  assert.ok(rule({ proto: 1, icmpType: 8, totalLength: 84 }));
  assert.ok(!rule({ proto: 1, icmpType: 8, totalLength: 1500 }));
  assert.ok(!rule({ proto: 1, icmpType: 0, totalLength: 84 }));
  assert.ok(rule({ proto: 17, kind: 4 }));
  assert.ok(rule({ proto: 6, mark: 0xff1f, hook: 2, queue: 3 }));
  assert.ok(!rule({ proto: 6, mark: 0xff2f, hook: 2, queue: 3 }));
  assert.ok(!rule({ proto: 6, mark: 0xff1f, hook: 1, queue: 3 }));
  assert.ok(!rule({ proto: 6, mark: 0xff1f, hook: 2, queue: 4 }));
});

test('real bytes: a DHCPACK from the packet builders matches dhcp_type ack', () => {
  const { st } = stageOf({ rules: [{ name: 'ack', match: { proto: 'udp', sport: 67, dhcp_type: 'ack' }, action: { mark: 0x800 } }] });
  const payload = dhcpBytes({ op: 2, xid: 7, chaddr: new Uint8Array(6), options: [{ code: 53, data: Uint8Array.of(5) }] });
  const bytes = ipv4Udp({ src: parseIpv4('192.0.2.1'), dst: parseIpv4('192.0.2.50') }, { sport: 67, dport: 68, payload });
  const d = new Decision();
  st.process(ctxOfBytes(bytes), d);
  assert.equal(d.markValue, 0x800);
  assert.equal(d.markMask, 0xffffffff);
});

test('mark --set-xmark semantics keep the bits outside the mask', () => {
  const d = new Decision();
  d.setMark(0x800, 0xf00);
  const before = 0xabc12;
  assert.equal(((before & ~d.markMask) ^ d.markValue) >>> 0, 0xab812);
});

test('route_via allocates marks under mark_mask and tables from first_table', () => {
  const { run, st } = stageOf({ route_tables: { mark_mask: '0xff00', first_table: 200 }, rules: [
    { name: 'a', match: { dport: 23, proto: 'tcp' }, action: { route_via: { dev: 'ipsec0' } } },
    { name: 'b', match: { dport: 24, proto: 'tcp' }, action: { route_via: { dev: 'eth0', via: '192.0.2.1' }, then: 'accept' } },
    { name: 'c', match: { dport: 25, proto: 'tcp' }, action: { route_via: { dev: 'ipsec0' } } },
  ] });
  const routes = (st as unknown as { compiled: { routes: { table: number; markValue: number; rules: string[] }[] } }).compiled.routes;
  assert.deepEqual(routes.map((r) => [r.table, r.markValue, r.rules]), [[200, 0x100, ['a', 'c']], [201, 0x200, ['b']]]);
  const d = run({ proto: 6, dport: 24 });
  assert.equal(d.verdict, Verdict.ACCEPT);
  assert.equal(d.markValue, 0x200);
  assert.equal(d.markMask, 0xff00);
});

test('bad configs are refused with the field named', () => {
  assert.throws(() => stageOf({ rules: [{ name: 'x', match: { src: '@nope' }, action: 'accept' }] }), /rules\[0\] \(x\)\.match: unknown address set @nope/);
  assert.throws(() => steerConfigSchema.parse({ rules: [{ name: 'x', match: { dst: '@nope' }, action: 'accept' }] }), /unknown address set @nope/);
  assert.throws(() => steerConfigSchema.parse({ rules: [{ name: 'x', match: { dport: '70000' }, action: 'accept' }] }));
  assert.throws(() => steerConfigSchema.parse({ rules: [{ name: 'x', match: { proto: 'tcpp' }, action: 'accept' }] }));
  assert.throws(() => steerConfigSchema.parse({ rules: [{ name: 'x', action: 'reject' }] }));
  assert.throws(() => stageOf({ rules: [{ name: 'x', action: 'accept' }, { name: 'x', action: 'drop' }] }), /used twice/);
  assert.throws(() => stageOf({ route_tables: { mark_mask: '0x3' }, rules: [1, 2, 3, 4].map((i) => ({ name: `r${i}`, match: { dport: i }, action: { route_via: { dev: `eth${i}` } } })) }), /no room/);
});

test('the prefilter never loses a rule (random rules vs. a rule-by-rule scan)', () => {
  let seed = 12345;
  const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  const rules = Array.from({ length: 60 }, (_, i) => {
    const m: Record<string, unknown> = {};
    if (rnd(2)) m.proto = ['tcp', 'udp', 'icmp'][rnd(3)];
    if (rnd(2)) m.dport = rnd(2) ? rnd(50) : `${rnd(25)}:${25 + rnd(25)}`;
    if (rnd(4) === 0) m.not = { dport: rnd(50) };
    if (rnd(3) === 0) m.src = `10.${rnd(4)}.0.0/16`;
    if (rnd(4) === 0) m.dst = [`192.168.${rnd(3)}.0/24`, `192.168.${rnd(3)}.128/25`];
    if (rnd(4) === 0) m.in = ['ppp*', 'eth0', 'ipsec0'][rnd(3)];
    if (rnd(5) === 0) m.hook = ['prerouting', 'output'][rnd(2)];
    if (rnd(6) === 0) m.not = { ...(m.not as object), src: `10.${rnd(4)}.${rnd(2)}.0/24` };
    if (rnd(6) === 0) m.not = { ...(m.not as object), in: 'ppp1' };
    return { name: `r${i}`, match: m, action: { mark: i + 1 } };
  });
  const { run } = stageOf({ rules });
  const cfg = steerConfigSchema.parse({ rules });
  const brute = createSteerStage({ ...cfg });
  brute.init!(fakeServices(ifaces));
  const m = (brute as unknown as { matcher: { matches(r: number, c: unknown): boolean } }).matcher;
  for (let k = 0; k < 3000; k++) {
    const p: PktSpec = { proto: [6, 17, 1, 50][rnd(4)], dport: rnd(55), src: `10.${rnd(5)}.${rnd(2)}.1`,
      dst: `192.168.${rnd(4)}.${rnd(256)}`, indev: rnd(7), hook: [0, 3, -1][rnd(3)], ipVersion: rnd(10) ? 4 : 6 };
    const ctx = ctxOf(p);
    let want = -1;
    for (let r = 0; r < rules.length; r++) if (m.matches(r, ctx)) { want = r; break; }
    const d = run(p);
    assert.equal(d.markMask ? d.markValue - 1 : -1, want, JSON.stringify(p));
  }
});

test('interfaces that appear after compile are matched once the table refreshes (no reload)', async () => {
  const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { Interfaces } = await import('../io/interfaces');
  const sys = mkdtempSync(join(tmpdir(), 'sluice-sysnet-'));
  const dev = (name: string, index: number) => {
    mkdirSync(join(sys, name));
    writeFileSync(join(sys, name, 'ifindex'), `${index}\n`);
    writeFileSync(join(sys, name, 'address'), '02:00:00:00:00:01\n');
  };
  dev('eth0', 2);
  const table = new Interfaces(sys, 60_000);
  table.refresh();
  const st = createSteerStage(steerConfigSchema.parse({ rules: [{ name: 'ppp', match: { in: 'ppp*' }, action: 'accept' }] }));
  st.init!(fakeServices(table));
  const run = (indev: number) => { const d = new Decision(); st.process(ctxOf({ proto: 17, indev }), d); return d.verdict; };
  assert.equal(run(7), Verdict.CONTINUE, 'index 7 unknown: no match (and remembered as such)');
  dev('ppp0', 7);
  assert.equal(run(7), Verdict.CONTINUE, 'still cached until the table refreshes');
  table.refresh();
  assert.equal(run(7), Verdict.ACCEPT, 'ppp0 matched after the refresh');
  assert.equal(run(2), Verdict.CONTINUE);
});
