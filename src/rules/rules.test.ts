import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyRuleSet, removeRuleSet, renderRuleSet, type Runner } from './index';
import type { RuleSet } from './types';

const rs: RuleSet = {
  iptables: [{ table: 'mangle', chain: 'OUTPUT', args: ['-o', 'ipsec0', '-p', 'udp', '-j', 'MARK', '--set-xmark', '0x800/0xf00'], comment: 'dhcp "replies"' }],
  ipRules: [{ args: ['fwmark', '0x800/0xf00', 'lookup', '20', 'priority', '1000'], comment: 'r' }],
  ipRoutes: [{ args: ['default', 'dev', 'eth0', 'table', '20'], comment: 'rt' }],
  tables: [{ id: 20, name: 'bg.dhcp' }, { id: 20, name: 'bg.dhcp' }],
};

/** A fake kernel: iptables rules and ip rules/routes as sets of argv strings. */
function fakeKernel(): { run: Runner; ipt: Set<string>; ip: Set<string>; calls: string[] } {
  const ipt = new Set<string>(), ip = new Set<string>(), calls: string[] = [];
  const run: Runner = (cmd, args) => {
    calls.push(`${cmd} ${args.join(' ')}`);
    const ok = { code: 0, stdout: '', stderr: '' };
    if (cmd === 'iptables') {
      const [, , table, op, chain, ...rest] = args;
      const key = `${table} ${chain} ${rest.join(' ')}`;
      if (op === '-C') return ipt.has(key) ? ok : { code: 1, stdout: '', stderr: 'no' };
      if (op === '-A') { ipt.add(key); return ok; }
      if (op === '-D') { ipt.delete(key); return ok; }
    }
    const [what, op, ...rest] = args;
    const key = `${what} ${rest.join(' ')}`;
    if (op === 'show') return { ...ok, stdout: ip.has(key) ? 'x\n' : '' };
    if (op === 'add') { ip.add(key); return ok; }
    if (op === 'del') { ip.delete(key); return ok; }
    return { code: 2, stdout: '', stderr: 'bad' };
  };
  return { run, ipt, ip, calls };
}

test('render: comment before the target, quotes escaped, removal reversed', () => {
  const t = renderRuleSet(rs);
  assert.equal(t.restore, "*mangle\n# dhcp \"replies\"\n-A OUTPUT -o ipsec0 -p udp -m comment --comment \"sluice: dhcp 'replies'\" -j MARK --set-xmark 0x800/0xf00\nCOMMIT\n");
  assert.equal(t.rtTables, '20\tbg.dhcp\n');
  assert.deepEqual(t.ipRemoveCommands, ['ip route del default dev eth0 table 20', 'ip rule del fwmark 0x800/0xf00 lookup 20 priority 1000']);
  assert.throws(() => renderRuleSet({ ...rs, tables: [{ id: 20, name: 'a' }, { id: 20, name: 'b' }] }), /named both/);
});

test('apply twice changes nothing the second time; remove restores', () => {
  const k = fakeKernel();
  const rt = join(mkdtempSync(join(tmpdir(), 'sluice-rt-')), 'sluice.conf');
  const first = applyRuleSet(rs, { run: k.run, rtTablesPath: rt });
  assert.equal(first.changed.length, 4);
  assert.equal(readFileSync(rt, 'utf8'), '20\tbg.dhcp\n');
  const second = applyRuleSet(rs, { run: k.run, rtTablesPath: rt });
  assert.deepEqual(second.changed, []);
  assert.equal(second.unchanged, 4);
  // Route before rule on apply; rule before route on removal.
  const adds = k.calls.filter((c) => / add /.test(c));
  assert.match(adds[0]!, /^ip route add/);
  const rem = removeRuleSet(rs, { run: k.run, rtTablesPath: rt });
  assert.equal(rem.changed.length, 4);
  assert.equal(k.ipt.size + k.ip.size, 0);
  assert.equal(existsSync(rt), false);
  assert.deepEqual(removeRuleSet(rs, { run: k.run, rtTablesPath: rt }).changed, []);
});

test('apply reports the failing command', () => {
  const k = fakeKernel();
  const run: Runner = (cmd, args) => (args[0] === 'route' && args[1] === 'add' ? { code: 2, stdout: '', stderr: 'Error: Nexthop device is not up.' } : k.run(cmd, args));
  assert.throws(() => applyRuleSet(rs, { run, rtTablesPath: null }), /ip route add default dev eth0 table 20: Error: Nexthop device is not up/);
});
