/** The host's nft base chains that can drop before sluice's (nft --check warnings), from `nft list ruleset` text. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseChains, hostShadows, parsePriority } from './nft-host';
import { nftTags } from './nft-apply';

// `nft list ruleset` (nftables 1.0.6) of a host with a native table and one iptables-nft rule, plus sluice's table.
const RULESET = `table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\ttcp dport 22 accept
\t}

\tchain fw {
\t\ttype filter hook forward priority filter - 5; policy accept;
\t\tip saddr 10.0.0.0/8 drop
\t}

\tchain late {
\t\ttype filter hook forward priority filter + 10; policy drop;
\t}

\tchain helper {
\t\tudp dport 53 drop
\t}
}
table ip filter {
\tchain OUTPUT {
\t\ttype filter hook output priority filter; policy accept;
\t\tcounter packets 0 bytes 0 accept comment "no drop here"
\t}
}
table inet sluice {
\tchain filter_input {
\t\ttype filter hook input priority filter; policy accept;
\t\tmeta nfproto ipv4 udp dport 53 accept comment "sluice: drop nothing #0badf00d"
\t}

\tchain filter_forward {
\t\ttype filter hook forward priority filter; policy accept;
\t}

\tchain filter_output {
\t\ttype filter hook output priority filter; policy accept;
\t}
}
`;

test('nft priorities: names, numbers, offsets', () => {
  assert.equal(parsePriority('filter'), 0);
  assert.equal(parsePriority('mangle - 5'), -155);
  assert.equal(parsePriority('raw + 1'), -299);
  assert.equal(parsePriority('-200'), -200);
  assert.equal(parsePriority('bogus'), null);
});

test('host base chains that can drop before sluice are named; later, accept-only and regular chains are not', () => {
  assert.deepEqual(baseChains(RULESET).filter((c) => c.table === 'filter').map((c) => `${c.family} ${c.chain} ${c.hook} ${c.priority} ${c.policyDrop} ${c.drops}`),
    ['inet input input 0 true 0', 'inet fw forward -5 false 1', 'inet late forward 10 true 0', 'ip OUTPUT output 0 false 0']);
  assert.deepEqual(hostShadows(RULESET, 'sluice').map((d) => `${d.where}: ${d.what}`), [
    'nft inet sluice filter_input: inet filter input (hook input) has the same priority (0: the order is not defined); policy drop: every packet it does not accept is dropped before sluice sees it',
    'nft inet sluice filter_forward: inet filter fw (hook forward) runs before it (priority -5 < 0); 1 drop/reject rule(s): what they match never reaches sluice',
  ]);
});

test('nft --check reads rule tags per chain; untagged rules count as extra, sets are not rules', () => {
  const listing = 'table inet sluice {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n\n\tchain a {\n\t\ttype filter hook input priority filter; policy accept;\n' +
    '\t\tiifname "x" accept comment "sluice: y #0123abcd"\n\t\tlog\n\t}\n\n\tset t {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.4 }\n\t}\n}\n';
  assert.deepEqual([...nftTags(listing)], [['a', ['0123abcd', 'untagged: log']]]);
});
