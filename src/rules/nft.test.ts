/**
 * The nftables renderer: each iptables argument a stage emits has its nft translation, unknown
 * ones are refused (never a silently different rule), and every example config renders with one
 * nft rule per iptables rule. test/netns/nft-rules.test.ts checks the output against the kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/load';
import { collectRules } from '../cli/pipeline';
import { NftTranslateError, nftRule, renderNft } from './nft';
import type { IptRule, RuleSet } from './types';

const rule = (args: string[], table: IptRule['table'] = 'mangle', chain = 'FORWARD'): IptRule => ({ table, chain, args, comment: 'why "quoted"' });
const body = (args: string[]): string => nftRule(rule(args)).replace(/ comment ".*"$/, '');

test('each iptables argument has its nft translation', () => {
  assert.equal(body(['-i', 'ppp+', '!', '-o', 'eth0', '-j', 'ACCEPT']), 'meta nfproto ipv4 iifname "ppp*" oifname != "eth0" accept');
  assert.equal(body(['-s', '10.0.0.0/8', '!', '-d', '192.0.2.1/32', '-j', 'DROP']), 'meta nfproto ipv4 ip saddr 10.0.0.0/8 ip daddr != 192.0.2.1/32 drop');
  assert.equal(body(['-p', '17', '--sport', '67', '--dport', '1000:2000', '-j', 'NFQUEUE', '--queue-num', '3', '--queue-bypass']),
    'meta nfproto ipv4 meta l4proto udp udp sport 67 udp dport 1000-2000 queue flags bypass to 3');
  assert.equal(body(['-p', 'tcp', '-m', 'multiport', '!', '--dports', '22,23,100:200', '-j', 'NFQUEUE', '--queue-num', '4']),
    'meta nfproto ipv4 meta l4proto tcp tcp dport != { 22, 23, 100-200 } queue to 4');
  assert.equal(body(['-p', 'esp', '-m', 'esp', '--espspi', '256:511', '-j', 'CT', '--notrack']), 'meta nfproto ipv4 meta l4proto esp esp spi 256-511 notrack');
  assert.equal(body(['-p', '1', '--icmp-type', '8', '-m', 'length', '--length', '0:128', '-m', 'mark', '--mark', '0x1/0x1', '-j', 'RETURN']),
    'meta nfproto ipv4 meta l4proto icmp icmp type 8 ip length 0-128 meta mark & 0x1 == 0x1 return');
  assert.equal(body(['-m', 'mark', '!', '--mark', '0x5/0xf', '-m', 'conntrack', '--ctstate', 'UNTRACKED', '-j', 'ACCEPT']),
    'meta nfproto ipv4 meta mark & 0xf != 0x5 ct state untracked accept');
  assert.equal(body(['-j', 'NFQUEUE', '--queue-balance', '2:5', '--queue-bypass']), 'meta nfproto ipv4 queue flags bypass to 2-5');
  assert.equal(body(['-j', 'NFQUEUE', '--queue-balance', '2:5', '--queue-bypass', '--queue-cpu-fanout']), 'meta nfproto ipv4 queue flags bypass,fanout to 2-5');
  assert.equal(body(['-j', 'MARK', '--set-xmark', '0x800/0xf00']), 'meta nfproto ipv4 meta mark set meta mark and 0xfffff0ff xor 0x800');
  // A comment is at most 128 bytes in nft and holds no double quote.
  const long = nftRule({ ...rule(['-j', 'ACCEPT']), comment: 'x'.repeat(300) });
  const c = /comment "(.*)"$/.exec(long)![1]!;
  assert.ok(Buffer.byteLength(c) <= 127 && c.startsWith('sluice: xxx'), c);
  assert.match(nftRule(rule(['-j', 'ACCEPT'])), /comment "sluice: why 'quoted' #[0-9a-f]{8}"$/);
  assert.match(long, / #[0-9a-f]{8}"$/, 'the tag survives truncation');
});

test('arguments without a translation are refused, not dropped', () => {
  for (const args of [['-m', 'policy', '--pol', 'ipsec', '-j', 'ACCEPT'], ['-j', 'NFQUEUE', '--queue-cpu-fanout'], ['--dport', '53', '-j', 'ACCEPT'],
    ['-j', 'MASQUERADE'], ['-p', 'udp', '!']]) {
    assert.throws(() => nftRule(rule(args)), NftTranslateError, args.join(' '));
  }
  assert.throws(() => renderNft({ iptables: [rule(['-j', 'ACCEPT'], 'filter', 'SLUICE-X')], ipRules: [], ipRoutes: [], tables: [] }), /not a built-in chain/);
});

test('chains per iptables table and hook; the table is replaced atomically and removed whole', () => {
  const rs: RuleSet = {
    iptables: [rule(['-j', 'ACCEPT'], 'filter', 'INPUT'), rule(['-p', 'esp', '-j', 'CT', '--notrack'], 'raw', 'PREROUTING'),
      rule(['-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '1'], 'mangle', 'OUTPUT'), rule(['-j', 'DROP'], 'filter', 'INPUT')],
    ipRules: [{ args: ['fwmark', '0x10/0xff', 'lookup', '100'], comment: 'steer' }], ipRoutes: [], tables: [],
  };
  const r = renderNft(rs);
  const lines = r.ruleset.split('\n');
  assert.deepEqual(lines.slice(0, 3), ['table inet sluice', 'delete table inet sluice', 'table inet sluice {']);
  // raw before mangle before filter; rules keep their order within a chain.
  const chains = lines.filter((l) => l.includes('chain ')).map((l) => l.trim());
  assert.deepEqual(chains, ['chain raw_prerouting {', 'chain mangle_output {', 'chain filter_input {']);
  assert.match(r.ruleset, /type filter hook prerouting priority raw;/);
  assert.match(r.ruleset, /type route hook output priority mangle;/, 'mangle OUTPUT reroutes on a mark change, as in iptables');
  assert.match(r.ruleset, /filter_input \{\n.*\n.*\n.* accept comment .*\n.*\n.* drop comment/);
  assert.equal(r.remove, 'table inet sluice\ndelete table inet sluice\n');
  assert.match(r.text, /#   ip rule add fwmark 0x10\/0xff lookup 100/);
  assert.equal(renderNft({ iptables: [], ipRules: [], ipRoutes: [], tables: [] }).ruleset, '');
});

test('every example config renders: one nft rule per iptables rule, same queue numbers', async () => {
  const dir = resolve(__dirname, '../../../examples');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 5);
  for (const f of files) {
    const rs = collectRules(await loadConfig(join(dir, f)));
    const nft = renderNft(rs).ruleset;
    const nftRules = nft.split('\n').filter((l) => l.includes('meta nfproto ipv4'));
    assert.equal(nftRules.length, rs.iptables.length, f);
    // The same queue numbers, as many times (rules are grouped by table and hook, so not in order).
    const nftQueues = nftRules.map((l) => / queue (?:flags \S+ )?to (\S+)/.exec(l)?.[1]).filter(Boolean).sort();
    const iptQueues = rs.iptables.map((r) => r.args.join(' ')).filter((a) => a.includes('NFQUEUE'))
      .map((a) => /--queue-num (\d+)/.exec(a)?.[1] ?? /--queue-balance (\d+):(\d+)/.exec(a)!.slice(1).join('-')).sort();
    assert.deepEqual(nftQueues, iptQueues, f);
    assert.equal(nftRules.filter((l) => / notrack comment/.test(l)).length, rs.iptables.filter((r) => r.args.includes('--notrack')).length, f);
  }
});
