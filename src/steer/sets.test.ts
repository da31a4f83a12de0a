/**
 * Named sets (address, port, interface; inline or from files) and verdict maps in the steer section:
 * what they match, how a map decides, and how a bad element is reported (file:line).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SteerConfigInput } from './config';
import { steerConfigSchema } from './schema';
import { createSteerStage } from './index';
import { steerRules } from './rules';
import { Verdict } from '../engine/stage';
import { parseConfigText } from '../config/load';
import { ctxOf, Decision, fakeInterfaces, fakeServices, type PktSpec } from '../../test/kit/steer';

const ifaces = fakeInterfaces({ lo: 1, eth0: 2, ipsec0: 3, ppp0: 4, ppp1: 5, wlan0: 6 });

function stageOf(input: SteerConfigInput) {
  const st = createSteerStage(steerConfigSchema.parse(input));
  const svc = fakeServices(ifaces);
  st.init!(svc);
  return { st, svc, run(p: PktSpec) { const d = new Decision(); st.process(ctxOf(p), d); return d; } };
}

function tmp(): { dir: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-sets-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('port and interface sets: @name in dport / in', () => {
  const { run } = stageOf({
    port_sets: { web: [80, 443, '8000:8099'] },
    interface_sets: { clients: ['ppp*', 'wlan0'] },
    rules: [{ name: 'web-from-clients', match: { in: '@clients', proto: 'tcp', dport: '@web' }, action: 'accept' }],
  });
  assert.equal(run({ proto: 6, dport: 443, indev: 4 }).verdict, Verdict.ACCEPT);
  assert.equal(run({ proto: 6, dport: 8050, indev: 6 }).verdict, Verdict.ACCEPT);
  assert.equal(run({ proto: 6, dport: 22, indev: 4 }).verdict, Verdict.CONTINUE);
  assert.equal(run({ proto: 6, dport: 443, indev: 2 }).verdict, Verdict.CONTINUE);
  assert.throws(() => steerConfigSchema.parse({ rules: [{ name: 'x', match: { dport: '@nope' }, action: 'accept' }] }), /unknown port set @nope/);
  assert.throws(() => steerConfigSchema.parse({ rules: [{ name: 'x', match: { in: '@nope' }, action: 'accept' }] }), /unknown interface set @nope/);
});

test('an address set from a file: one element per line, comments; a bad line is named by file:line', () => {
  const t = tmp();
  try {
    writeFileSync(join(t.dir, 'clients.txt'), '# VPN clients\n10.8.0.0/24\n\n192.0.2.7   # one host\n');
    writeFileSync(join(t.dir, 'cfg.yaml'), [
      'queues: [{ num: 1 }]',
      'steer:',
      '  address_sets:',
      '    clients: { file: clients.txt }',
      '  rules:',
      '    - { name: c, match: { src: "@clients" }, action: accept }',
    ].join('\n'));
    const cfg = parseConfigText(require('node:fs').readFileSync(join(t.dir, 'cfg.yaml'), 'utf8'), join(t.dir, 'cfg.yaml'));
    assert.deepEqual(cfg.steer!.address_sets.clients, ['10.8.0.0/24', '192.0.2.7']);
    const st = createSteerStage(cfg.steer!);
    st.init!(fakeServices(ifaces));
    const run = (src: string) => { const d = new Decision(); st.process(ctxOf({ src, proto: 17 }), d); return d.verdict; };
    assert.equal(run('10.8.0.99'), Verdict.ACCEPT);
    assert.equal(run('192.0.2.7'), Verdict.ACCEPT);
    assert.equal(run('192.0.2.8'), Verdict.CONTINUE);

    writeFileSync(join(t.dir, 'clients.txt'), '10.8.0.0/24\n10.8.1.300\n10.9.0.0/33\n');
    const text = require('node:fs').readFileSync(join(t.dir, 'cfg.yaml'), 'utf8');
    assert.throws(() => parseConfigText(text, join(t.dir, 'cfg.yaml')), (e: Error) =>
      /clients\.txt:2: 10\.8\.1\.300: an IPv4 address/.test(e.message) && /clients\.txt:3: 10\.9\.0\.0\/33/.test(e.message) && /cfg\.yaml:4:/.test(e.message));
    rmSync(join(t.dir, 'clients.txt'));
    assert.throws(() => parseConfigText(text, join(t.dir, 'cfg.yaml')), /cannot read .*clients\.txt/);
  } finally { t.done(); }
});

test('a verdict map: the element decides the mark; a miss falls through to the next rule', () => {
  const { run, st } = stageOf({
    maps: { per_client: { key: 'src', elements: { '10.8.0.0/24': '0x10/0xff', '10.8.1.7': 0x20, '10.8.2.0/24': 'drop', '10.8.3.0/24': 'accept' } } },
    rules: [
      { name: 'clients', match: { proto: 'udp' }, action: { map: 'per_client', then: 'continue' } },
      { name: 'rest', match: {}, action: { mark: '0x99/0xff' } },
    ],
  });
  let d = run({ src: '10.8.0.5', proto: 17 });
  assert.equal(d.verdict, Verdict.CONTINUE); assert.equal(d.markValue, 0x10); assert.equal(d.markMask, 0xff);
  d = run({ src: '10.8.1.7', proto: 17 });
  assert.equal(d.markValue, 0x20); assert.equal(d.markMask, 0xffffffff);
  assert.equal(run({ src: '10.8.2.1', proto: 17 }).verdict, Verdict.DROP);
  assert.equal(run({ src: '10.8.3.1', proto: 17 }).verdict, Verdict.ACCEPT);
  d = run({ src: '10.8.1.8', proto: 17 }); // not in the map
  assert.equal(d.markValue, 0x99);
  d = run({ src: '10.8.0.5', proto: 6 }); // the rule's own match fails
  assert.equal(d.markValue, 0x99);
  d = run({ src: '10.8.0.5', proto: 17, ipVersion: 6 }); // no IPv4 source: no lookup
  assert.equal(d.markValue, 0x99);
  const stats = st.stats!() as { rules: Record<string, number> };
  assert.equal(stats.rules.clients, 4);
  assert.equal(stats.rules.rest, 3);
});

test('maps on SPI and dport; from a file with file:line errors; overlaps and conflicts refused', () => {
  const { run } = stageOf({
    maps: { spis: { key: 'esp_spi', elements: { '0xc0000001': 'drop', 3221225474: '0x1/0x1' } }, ports: { key: 'dport', elements: { 443: 'accept' } } },
    rules: [
      { name: 'by-spi', match: { kind: ['esp', 'esp-in-udp'] }, action: { map: 'spis', then: 'accept' } },
      { name: 'by-port', match: { proto: 'tcp' }, action: { map: 'ports', then: 'continue' } },
    ],
  });
  assert.equal(run({ proto: 50, kind: 1, espSpi: 0xc0000001 }).verdict, Verdict.DROP);
  const d = run({ proto: 50, kind: 1, espSpi: 0xc0000002 });
  assert.equal(d.verdict, Verdict.ACCEPT); assert.equal(d.markValue, 1);
  assert.equal(run({ proto: 50, kind: 1, espSpi: 0xc0000003 }).verdict, Verdict.CONTINUE);
  assert.equal(run({ proto: 6, dport: 443 }).verdict, Verdict.ACCEPT);
  assert.equal(run({ proto: 6, dport: 443, isLaterFragment: true }).verdict, Verdict.CONTINUE);

  const t = tmp();
  try {
    const f = join(t.dir, 'm.txt');
    writeFileSync(f, '10.0.0.0/24 0x10\n10.0.1.0/24 accept\n# comment\n10.0.2.0/24 sideways\n10.0.3.0/24\n10.0.4.300 0x1\n');
    assert.throws(() => steerConfigSchema.parse({ maps: { m: { key: 'src', elements: { file: f } } }, rules: [] }), (e: Error) =>
      /m\.txt:4: sideways/.test(e.message) && /m\.txt:5: 10\.0\.3\.0\/24: want .+element value/.test(e.message) && /m\.txt:6: 10\.0\.4\.300/.test(e.message));
    writeFileSync(f, '10.0.0.0/24 0x10\n10.0.0.128/25 accept\n');
    assert.throws(() => steerConfigSchema.parse({ maps: { m: { key: 'src', elements: { file: f } } }, rules: [{ name: 'r', action: { map: 'm' } }] }),
      /m\.txt:1: 10\.0\.0\.0\/24 and .*m\.txt:2: 10\.0\.0\.128\/25 overlap/);
  } finally { t.done(); }
  assert.throws(() => steerConfigSchema.parse({ maps: { m: { key: 'src', elements: { '10.0.0.1': 1 } } }, rules: [{ name: 'r', match: { src: '10.0.0.0/8' }, action: { map: 'm' } }] }),
    /match\.src and a map on src/);
  assert.throws(() => steerConfigSchema.parse({ rules: [{ name: 'r', action: { map: 'nope' } }] }), /unknown map nope/);
});

test('a map rule captures what its match and elements can match (one iptables rule set, not one per element)', () => {
  const elements: Record<string, string> = {};
  for (let i = 0; i < 1000; i++) elements[`10.${i >> 8}.${i & 255}.1`] = '0x1/0xff';
  const cfg = steerConfigSchema.parse({
    maps: { m: { key: 'src', elements } },
    capture: { queue: 3 },
    rules: [{ name: 'r', match: { proto: 'udp', hook: 'prerouting' }, action: { map: 'm' } }],
  });
  const rs = steerRules(cfg);
  const capture = rs.iptables.filter((r) => r.args.includes('NFQUEUE'));
  assert.ok(capture.length >= 1 && capture.length <= 32, `${capture.length} capture rules`);
  assert.ok(capture.every((r) => r.args.includes('-p') && r.args.includes('17')));
});
