import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SteerConfigInput } from './config';
import { steerConfigSchema } from './schema';
import { steerCheck, steerRules } from './index';
import { renderRuleSet } from '../rules/render';

const parse = (x: SteerConfigInput) => steerConfigSchema.parse(x);

test('seed 1: mark rule + route_via-like routing render as the hand-written recipe', () => {
  const cfg = parse({
    capture: { queue: 3 },
    rules: [{ name: 'dhcp-replies-out-eth0', match: { hook: 'output', out: 'ipsec0', proto: 'udp', sport: 67, dport: 68 },
      action: { route_via: { dev: 'eth0' } } }],
  });
  const rs = steerRules(cfg);
  assert.deepEqual(rs.ipRoutes.map((r) => r.args.join(' ')), ['default dev eth0 table 100']);
  assert.deepEqual(rs.ipRules.map((r) => r.args.join(' ')), ['fwmark 0x100/0xff00 lookup 100 priority 1000']);
  assert.deepEqual(rs.tables, [{ id: 100, name: 'sluice.eth0' }]);
  assert.deepEqual(rs.iptables.map((r) => `${r.table} ${r.chain} ${r.args.join(' ')}`),
    ['mangle OUTPUT -o ipsec0 -p 17 --sport 67 --dport 68 -j NFQUEUE --queue-num 3 --queue-bypass']);
  const text = renderRuleSet(rs);
  assert.match(text.restore, /^\*mangle\n:SLUICE-OUTPUT - \[0:0\]\n# sluice steer: rule dhcp-replies-out-eth0 \(capture\)\n-A SLUICE-OUTPUT -o ipsec0 -p 17 --sport 67 --dport 68 -m comment --comment "sluice: steer: rule dhcp-replies-out-eth0 \(capture\) #[0-9a-f]{8}" -j NFQUEUE --queue-num 3 --queue-bypass\n#[^\n]*\n-I OUTPUT 1 -m comment --comment "[^"]*" -j SLUICE-OUTPUT\nCOMMIT\n$/);
  assert.match(text.restoreRemove, /^\*mangle\n-D OUTPUT -m comment --comment "[^"]*" -j SLUICE-OUTPUT\n:SLUICE-OUTPUT - \[0:0\]\n-X SLUICE-OUTPUT\nCOMMIT\n$/);
  assert.deepEqual(text.ipCommands, ['ip rule add fwmark 0x100/0xff00 lookup 100 priority 1000', 'ip route add default dev eth0 table 100']);
  assert.deepEqual(text.ipRemoveCommands, ['ip route del default dev eth0 table 100', 'ip rule del fwmark 0x100/0xff00 lookup 100 priority 1000']);
  assert.equal(text.rtTables, '100\tsluice.eth0\n');
  assert.match(text.text, /---- removal ----/);
});

test('seed 2: local_routes give locally generated traffic the tunnel-side source (iif lo)', () => {
  const rs = steerRules(parse({ local_routes: [{ dst: '10.1.0.0/16', dev: 'ipsec0', src: '10.0.1.1' }] }));
  assert.deepEqual(rs.ipRules.map((r) => r.args.join(' ')), ['iif lo lookup 99 priority 500']);
  assert.deepEqual(rs.ipRoutes.map((r) => r.args.join(' ')), ['10.1.0.0/16 dev ipsec0 src 10.0.1.1 table 99']);
});

test('capture rules are a superset: lists expand, inexpressible fields are left out', () => {
  const rs = steerRules(parse({
    capture: { queue: 1, bypass: false, hooks: ['prerouting'] },
    address_sets: { vpn: ['10.0.2.0/24', '10.0.3.0/24'] },
    rules: [
      { name: 'a', match: { in: 'ppp*', src: '@vpn', dport: [53, '1000:2000'], dhcp_type: 'inform' }, action: 'accept' },
      { name: 'b', match: { in: 'ipsec?', proto: 'esp', esp_spi: '0x100:0x1ff', not: { src: '10.9.0.0/16' } }, action: 'accept' },
      { name: 'c', match: { hook: 'output', in: 'eth0' }, action: 'accept' },
    ],
  }));
  const lines = rs.iptables.map((r) => `${r.chain} ${r.args.join(' ')}`);
  assert.deepEqual(lines, [
    'PREROUTING -i ppp+ -s 10.0.2.0/24 -p 6 -m multiport --dports 53,1000:2000 -j NFQUEUE --queue-num 1',
    'PREROUTING -i ppp+ -s 10.0.2.0/24 -p 17 -m multiport --dports 53,1000:2000 -j NFQUEUE --queue-num 1',
    'PREROUTING -i ppp+ -s 10.0.3.0/24 -p 6 -m multiport --dports 53,1000:2000 -j NFQUEUE --queue-num 1',
    'PREROUTING -i ppp+ -s 10.0.3.0/24 -p 17 -m multiport --dports 53,1000:2000 -j NFQUEUE --queue-num 1',
    'PREROUTING ! -s 10.9.0.0/16 -p 50 -m esp --espspi 256:511 -j NFQUEUE --queue-num 1',
  ]);
});

test('steerCheck: shadowed rules, route_via after routing', () => {
  const w = steerCheck(parse({ rules: [
    { name: 'all-udp', match: { proto: 'udp' }, action: 'continue' },
    { name: 'dns', match: { proto: 'udp', dport: 53 }, action: 'accept' },
    { name: 'lan', match: { src: '10.0.0.0/8', not: { dport: 22 } }, action: 'accept' },
    { name: 'lan-web', match: { src: '10.1.0.0/16', dport: 80, proto: 'tcp' }, action: 'drop' },
    { name: 'lan-ssh', match: { src: '10.1.0.0/16', dport: 22, proto: 'tcp' }, action: 'drop' },
    { name: 'late', match: { hook: 'postrouting', proto: 'tcp' }, action: { route_via: { dev: 'eth0' } } },
  ] }));
  assert.deepEqual(w, [
    'rule dns (#2) can never match: rule all-udp (#1) above it matches every packet it would',
    'rule lan-web (#4) can never match: rule lan (#3) above it matches every packet it would',
    'rule late: route_via on hook(s) after routing (input/forward/postrouting) cannot change the route; use prerouting or output',
  ]);
});
