/**
 * The iptables planner (sluice's own chains, the jumps at a chosen position, atomic replacement)
 * against kernel states spelled as `iptables -S` prints them, and apply's rollback with a runner that
 * stands in for the commands. test/netns/rules-apply.test.ts runs the same against the kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyRuleSet, ApplyError, ipv6Warnings, renderRuleSet, type Runner } from './index';
import { driftTable, planTable, wantedTarget, jumpIndex } from './ipt-plan';
import { parseTableState, splitSaveLine, ruleTag } from './ipt-state';
import type { RuleSet } from './types';

const rs: RuleSet = {
  iptables: [{ table: 'mangle', chain: 'OUTPUT', args: ['-o', 'ipsec0', '-p', 'udp', '-j', 'MARK', '--set-xmark', '0x800/0xf00'], comment: 'dhcp "replies"' }],
  ipRules: [{ args: ['fwmark', '0x800/0xf00', 'lookup', '20', 'priority', '1000'], comment: 'r' }],
  ipRoutes: [{ args: ['default', 'dev', 'eth0', 'table', '20'], comment: 'rt' }],
  tables: [{ id: 20, name: 'bg.dhcp' }, { id: 20, name: 'bg.dhcp' }],
};
const TAG = ruleTag('mangle', 'OUTPUT', rs.iptables[0]!.args);

test('render: own chain, tagged comment, the jump first; removal deletes jump and chain', () => {
  const t = renderRuleSet(rs);
  assert.equal(t.restore, `*mangle\n:SLUICE-OUTPUT - [0:0]\n# dhcp "replies"\n-A SLUICE-OUTPUT -o ipsec0 -p udp -m comment --comment "sluice: dhcp 'replies' #${TAG}" -j MARK --set-xmark 0x800/0xf00\n` +
    '# the jump: rule 1 (first) of OUTPUT (`--apply` keeps it there; pasted by hand it is added again each time)\n' +
    '-I OUTPUT 1 -m comment --comment "sluice: jump to SLUICE-OUTPUT (the rules sluice needs in OUTPUT)" -j SLUICE-OUTPUT\nCOMMIT\n');
  assert.match(renderRuleSet(rs, { backend: 'auto', position: 'last', chain_prefix: 'GW2' }).restore, /\n-A OUTPUT -m comment --comment "sluice: jump to GW2-OUTPUT [^"]*" -j GW2-OUTPUT\n/);
  assert.equal(t.rtTables, '20\tbg.dhcp\n');
  assert.deepEqual(t.ipRemoveCommands, ['ip route del default dev eth0 table 20', 'ip rule del fwmark 0x800/0xf00 lookup 20 priority 1000']);
  assert.throws(() => renderRuleSet({ ...rs, tables: [{ id: 20, name: 'a' }, { id: 20, name: 'b' }] }), /named both/);
});

test('iptables -S lines split as iptables quoted them', () => {
  assert.deepEqual(splitSaveLine('-A X -m comment --comment "a \\"b\\" c" -j ACCEPT'), ['-A', 'X', '-m', 'comment', '--comment', 'a "b" c', '-j', 'ACCEPT']);
});

test('jump position: first, last, a number, and a number past the end', () => {
  assert.deepEqual(jumpIndex('first', 5), { index: 1, clamped: false });
  assert.deepEqual(jumpIndex('last', 5), { index: 6, clamped: false });
  assert.deepEqual(jumpIndex(3, 5), { index: 3, clamped: false });
  assert.deepEqual(jumpIndex(9, 5), { index: 6, clamped: true });
});

const HOST = `-P OUTPUT ACCEPT
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -j DROP`;

test('plan: a host chain with a terminal DROP gets the jump at 1; the second plan is empty', () => {
  const st = parseTableState('mangle', HOST);
  const target = wantedTarget('mangle', rs.iptables, st, 'SLUICE', 'first');
  const plan = planTable(st, target, 'SLUICE');
  assert.match(plan.restore, /^\*mangle\n:SLUICE-OUTPUT - \[0:0\]\n-A SLUICE-OUTPUT .* -j MARK --set-xmark 0x800\/0xf00\n-I OUTPUT 1 .* -j SLUICE-OUTPUT\nCOMMIT\n$/);
  // The kernel after that transaction, as iptables -S prints it.
  const after = parseTableState('mangle', `-P OUTPUT ACCEPT\n-N SLUICE-OUTPUT
-A OUTPUT -m comment --comment "sluice: jump to SLUICE-OUTPUT" -j SLUICE-OUTPUT
-A OUTPUT -o lo -j ACCEPT\n-A OUTPUT -j DROP
-A SLUICE-OUTPUT -o ipsec0 -p udp -m comment --comment "sluice: dhcp 'replies' #${TAG}" -j MARK --set-xmark 0x800/0xf00`);
  assert.equal(planTable(after, wantedTarget('mangle', rs.iptables, after, 'SLUICE', 'first'), 'SLUICE').restore, '');
  assert.deepEqual(driftTable(after, wantedTarget('mangle', rs.iptables, after, 'SLUICE', 'first'), 'SLUICE', new Map()), []);
  // Position 2 moves the jump behind `-o lo -j ACCEPT`, and check names that rule.
  const moved = planTable(after, wantedTarget('mangle', rs.iptables, after, 'SLUICE', 2), 'SLUICE');
  assert.match(moved.restore, /\n-D OUTPUT -m comment --comment "sluice: jump to SLUICE-OUTPUT" -j SLUICE-OUTPUT\n-I OUTPUT 2 /);
  const drift = driftTable(after, wantedTarget('mangle', rs.iptables, after, 'SLUICE', 'last'), 'SLUICE', new Map());
  assert.deepEqual(drift.map((d) => d.what), ['jump to SLUICE-OUTPUT is rule 1, wanted 3']);
  // Removal: jump deleted, chain emptied and deleted, in one transaction; the host's rules stay.
  const rm = planTable(after, { table: 'mangle', chains: new Map(), builtin: new Map(), notes: [] }, 'SLUICE');
  assert.equal(rm.restore, '*mangle\n:SLUICE-OUTPUT - [0:0]\n-D OUTPUT -m comment --comment "sluice: jump to SLUICE-OUTPUT" -j SLUICE-OUTPUT\n-X SLUICE-OUTPUT\nCOMMIT\n');
  // Another instance's chains (another prefix) are not touched.
  assert.equal(planTable(after, { table: 'mangle', chains: new Map(), builtin: new Map(), notes: [] }, 'GW2').restore, '');
});

test('check: an extra rule, a missing one, a DROP before the jump, a rule left by an older sluice', () => {
  const st = parseTableState('mangle', `-P OUTPUT ACCEPT\n-N SLUICE-OUTPUT
-A OUTPUT -j DROP
-A OUTPUT -m comment --comment "sluice: jump" -j SLUICE-OUTPUT
-A OUTPUT -p tcp -m comment --comment "sluice: queue 1: capture" -j NFQUEUE --queue-num 1
-A SLUICE-OUTPUT -j ACCEPT`);
  const d = driftTable(st, wantedTarget('mangle', rs.iptables, st, 'SLUICE', 'first'), 'SLUICE', new Map()).map((x) => `${x.warn ? 'w' : 'D'} ${x.where}: ${x.what}`);
  assert.deepEqual(d, [
    `D mangle SLUICE-OUTPUT: missing rule: -A SLUICE-OUTPUT -o ipsec0 -p udp -m comment --comment "sluice: dhcp 'replies' #${TAG}" -j MARK --set-xmark 0x800/0xf00`,
    'D mangle SLUICE-OUTPUT: extra rule 1: -A SLUICE-OUTPUT -j ACCEPT',
    'D mangle OUTPUT: jump to SLUICE-OUTPUT is rule 2, wanted 1',
    'D mangle OUTPUT: rule 1 before the jump ends the chain for EVERY packet (sluice sees none): -A OUTPUT -j DROP',
    'D mangle OUTPUT: rule 3 left by an older sluice in the built-in chain: -A OUTPUT -p tcp -m comment --comment "sluice: queue 1: capture" -j NFQUEUE --queue-num 1',
  ]);
});

/** A stand-in for iptables/ip: tables start empty, restores succeed, `ip route add` can be made to fail. */
function fakeKernel(failRoute: boolean): { run: Runner; calls: string[] } {
  const calls: string[] = [];
  const routes = new Set<string>();
  let mangle = '-P OUTPUT ACCEPT\n';
  const run: Runner = (cmd, args, input) => {
    calls.push(`${cmd} ${args.join(' ')}${input ? `\n${input}` : ''}`);
    const ok = { code: 0, stdout: '', stderr: '' };
    if (cmd === 'iptables') return args.includes('-S') ? { ...ok, stdout: args.includes('mangle') ? mangle : '' } : { code: 1, stdout: '', stderr: '' };
    if (cmd === 'iptables-restore') {
      // Enough of the kernel for the plan: the chain and the jump appear, or go again.
      mangle = input?.includes('-X SLUICE-OUTPUT') ? '-P OUTPUT ACCEPT\n'
        : '-P OUTPUT ACCEPT\n-N SLUICE-OUTPUT\n-A OUTPUT -m comment --comment "sluice: jump" -j SLUICE-OUTPUT\n';
      return ok;
    }
    const [what, op, ...rest] = args;
    if (what === 'route' && op === 'add' && failRoute) return { code: 2, stdout: '', stderr: 'Cannot find device "eth0"' };
    if (op === 'show') return { ...ok, stdout: routes.has(`${what} ${rest.join(' ')}`) ? 'x\n' : '' };
    if (op === 'add') routes.add(`${what} ${rest.join(' ')}`);
    if (op === 'del') routes.delete(`${what} ${rest.join(' ')}`);
    return ok;
  };
  return { run, calls };
}

test('apply: a failing route rolls back the table transaction and the rt_tables file', () => {
  const rt = join(mkdtempSync(join(tmpdir(), 'sluice-rt-')), 'sluice.conf');
  writeFileSync(rt, 'old\n');
  const k = fakeKernel(true);
  assert.throws(() => applyRuleSet(rs, { run: k.run, rtTablesPath: rt }), (e: Error) => {
    assert.ok(e instanceof ApplyError);
    assert.match(e.message, /^ip route add default dev eth0 table 20: Cannot find device "eth0"\nrolled back: table mangle put back; .*sluice.conf put back$/);
    return true;
  });
  assert.equal(readFileSync(rt, 'utf8'), 'old\n');
  const restores = k.calls.filter((c) => c.startsWith('iptables-restore'));
  assert.equal(restores.length, 2, 'the apply transaction, then the one putting the table back');
  assert.match(restores[0]!, /\n-A OUTPUT .* -j SLUICE-OUTPUT\n/, 'an empty chain: the jump is appended (= rule 1)');
  // Putting back = the chain and jump this run added are deleted.
  assert.match(restores[1]!, /-X SLUICE-OUTPUT/);
  assert.ok(!k.calls.some((c) => c.startsWith('ip rule add')), 'the rule after the failing route was never added');
});

test('apply: without failures, nothing is undone and each step is reported', () => {
  const k = fakeKernel(false);
  const rt = join(mkdtempSync(join(tmpdir(), 'sluice-rt-')), 'sluice.conf');
  const rep = applyRuleSet(rs, { run: k.run, rtTablesPath: rt });
  assert.deepEqual(rep.changed, [`write ${rt}`, 'mangle: SLUICE-OUTPUT created (1 rule(s))', 'mangle OUTPUT: appended: jump to SLUICE-OUTPUT',
    'ip route add default dev eth0 table 20', 'ip rule add fwmark 0x800/0xf00 lookup 20 priority 1000']);
  assert.ok(existsSync(rt));
});

test('apply: a table transaction the kernel refuses puts back the tables before it; no route is added', () => {
  const two: RuleSet = { ...rs, iptables: [...rs.iptables, { table: 'filter', chain: 'INPUT', args: ['-p', 'udp', '-j', 'ACCEPT'], comment: 'f' }] };
  const calls: string[] = [];
  let mangle = '-P OUTPUT ACCEPT\n';
  const run: Runner = (cmd, args, input) => {
    calls.push(`${cmd} ${args.join(' ')}`);
    if (cmd === 'iptables') return args.includes('-S') ? { code: 0, stdout: args.includes('mangle') ? mangle : '', stderr: '' } : { code: 1, stdout: '', stderr: '' };
    if (cmd === 'iptables-restore') {
      if (input?.includes('*filter')) return { code: 2, stdout: '', stderr: 'iptables-restore: line 3 failed' };
      mangle = input?.includes('-X SLUICE-OUTPUT') ? '-P OUTPUT ACCEPT\n' : '-P OUTPUT ACCEPT\n-N SLUICE-OUTPUT\n-A OUTPUT -m comment --comment "sluice: jump" -j SLUICE-OUTPUT\n';
      return { code: 0, stdout: '', stderr: '' };
    }
    return { code: 0, stdout: '', stderr: '' };
  };
  assert.throws(() => applyRuleSet(two, { run, rtTablesPath: null }), (e: Error) => /^iptables-restore -w --noflush: iptables-restore: line 3 failed\nrolled back: table mangle put back$/.test(e.message));
  assert.equal(mangle, '-P OUTPUT ACCEPT\n', 'mangle holds nothing of sluice again');
  assert.ok(!calls.some((c) => c.startsWith('ip route add') || c.startsWith('ip rule add')));
});

test('apply: a rollback step that fails is named (ROLLBACK FAILED), the others still run', () => {
  let restores = 0;
  const run: Runner = (cmd, args) => {
    const after = restores > 0 && args.includes('mangle') ? '-N SLUICE-OUTPUT\n-A OUTPUT -m comment --comment "sluice: jump" -j SLUICE-OUTPUT\n' : '';
    if (cmd === 'iptables') return args.includes('-S') ? { code: 0, stdout: after, stderr: '' } : { code: 1, stdout: '', stderr: '' };
    // The apply transaction goes in; the one putting the table back is refused.
    if (cmd === 'iptables-restore') return ++restores === 1 ? { code: 0, stdout: '', stderr: '' } : { code: 4, stdout: '', stderr: 'Resource temporarily unavailable' };
    if (args[0] === 'route' && args[1] === 'add') return { code: 2, stdout: '', stderr: 'Cannot find device "eth0"' };
    return { code: 0, stdout: '', stderr: '' };
  };
  const rt = join(mkdtempSync(join(tmpdir(), 'sluice-rt-')), 'sluice.conf');
  assert.throws(() => applyRuleSet(rs, { run, rtTablesPath: rt }), (e: Error) =>
    /rolled back: \S+sluice\.conf put back\nROLLBACK FAILED \(fix by hand, then sluice rules --check\): table mangle put back: iptables-restore -w --noflush: Resource temporarily unavailable$/.test(e.message));
  assert.equal(existsSync(rt), false, 'the names file went back (it was not there)');
});

test('IPv6 warnings: only for stages that would need it; loud only when the host has IPv6', () => {
  const host = { enabled: true, forwarding: true, globalAddrs: ['2001:db8::1/64 on eth0'] };
  assert.deepEqual(ipv6Warnings({}, host), []);
  assert.deepEqual(ipv6Warnings({ policy: { enabled: false }, steer: { enabled: false } }, host), []);
  const [p, s] = ipv6Warnings({ policy: { enabled: true, default: 'discard' }, steer: { enabled: true } }, host);
  assert.match(p!, /^WARNING: IPv6 is not covered: the policy stage \(SPD, default discard\) sees IPv4 only.*2001:db8::1\/64 on eth0, forwarding on/);
  assert.match(s!, /^WARNING: IPv6 is not covered: steer/);
  assert.match(ipv6Warnings({ steer: { enabled: true } }, { enabled: true, forwarding: false, globalAddrs: [] })[0]!, /^IPv6 is not covered: steer/);
});
