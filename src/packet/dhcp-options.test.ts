import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeClasslessRoutes, encodeClasslessRoutes, encodeClasslessRoutesInto, classlessRoutesLength,
  relayAgentInfo, paramRequestList, describeOption, RAI_CIRCUIT_ID, RAI_REMOTE_ID, RAI_LINK_SELECTION } from './dhcp-options';
import { ParseError } from './errors';
import { fromHex, ip4, toHex } from './bytes';

// Source: RFC 3442 section 2, the table of destination descriptors.
const RFC3442: [string, number, string][] = [
  ['0.0.0.0', 0, '00'],
  ['10.0.0.0', 8, '080a'],
  ['10.0.0.0', 24, '180a0000'],
  ['10.17.0.0', 16, '100a11'],
  ['10.27.129.0', 24, '180a1b81'],
  ['10.229.0.128', 25, '190ae50080'],
  ['10.198.122.47', 32, '200ac67a2f'],
];

test('RFC 3442 destination descriptors: encode and decode each row', () => {
  for (const [dst, len, desc] of RFC3442) {
    const route = { destination: ip4(dst), prefixLength: len, router: ip4('192.0.2.1') };
    const b = encodeClasslessRoutes([route]);
    assert.equal(toHex(b), desc + 'c0000201', `${dst}/${len}`);
    const d = decodeClasslessRoutes(b, 0, b.length);
    assert.ok(d.ok);
    assert.deepEqual(d.value, [route]);
  }
});

test('all rows in one option, at an offset in a larger buffer', () => {
  const routes = RFC3442.map(([d, l]) => ({ destination: ip4(d), prefixLength: l, router: ip4('198.51.100.254') }));
  const buf = new Uint8Array(200).fill(0xee);
  const n = encodeClasslessRoutesInto(routes, buf, 31);
  assert.equal(n, classlessRoutesLength(routes));
  assert.equal(buf[30], 0xee);
  assert.equal(buf[31 + n], 0xee);
  const d = decodeClasslessRoutes(buf, 31, n);
  assert.ok(d.ok);
  assert.deepEqual(d.value, routes);
});

test('edge: width 33 is bad-value', () => {
  const d = decodeClasslessRoutes(fromHex('210a0000000a000001')!, 0, 9);
  assert.equal(d.ok, false);
  assert.equal(!d.ok && d.error, ParseError.BAD_VALUE);
});
test('edge: router cut short is truncated', () => {
  const d = decodeClasslessRoutes(fromHex('080a0a0000')!, 0, 5);
  assert.equal(!d.ok && d.error, ParseError.TRUNCATED);
});
test('edge: descriptor cut short is truncated', () => {
  const d = decodeClasslessRoutes(fromHex('180a00')!, 0, 3);
  assert.equal(!d.ok && d.error, ParseError.TRUNCATED);
});
test('edge: stray bits beyond the prefix are cleared on decode and encode', () => {
  const d = decodeClasslessRoutes(fromHex('090aff' + 'c0000201')!, 0, 7);
  assert.ok(d.ok);
  assert.equal(d.value[0]!.destination, ip4('10.128.0.0'));
  assert.equal(toHex(encodeClasslessRoutes([{ destination: ip4('10.255.1.1'), prefixLength: 9, router: 1 }])), '090a8000000001');
});
test('edge: empty option is an empty list; encode rejects prefix 33', () => {
  const d = decodeClasslessRoutes(new Uint8Array(0), 0, 0);
  assert.deepEqual(d, { ok: true, value: [] });
  assert.throws(() => encodeClasslessRoutes([{ destination: 0, prefixLength: 33, router: 0 }]), RangeError);
});

// Source: RFC 3046 2.0 layout; values as ISC dhcrelay writes them (circuit id = interface name).
test('option 82 sub-options: encode, decode, find, round trip at an offset', () => {
  const subs = [{ code: RAI_CIRCUIT_ID, data: Buffer.from('ppp0') }, { code: RAI_REMOTE_ID, data: fromHex('020000000001')! },
    { code: RAI_LINK_SELECTION, data: fromHex('0a090000')! }];
  const buf = new Uint8Array(64);
  const n = relayAgentInfo.encode(subs, buf, 5);
  assert.equal(n, relayAgentInfo.encodingLength(subs));
  assert.equal(toHex(buf, 5, n), '0104' + toHex(Buffer.from('ppp0')) + '0206020000000001' + '05040a090000');
  const d = relayAgentInfo.decode(buf, 5, n);
  assert.ok(d.ok);
  assert.deepEqual(d.value.map((s) => [s.code, toHex(s.data)]), subs.map((s) => [s.code, toHex(s.data)]));
  const at = relayAgentInfo.find(buf, 5, n, RAI_LINK_SELECTION);
  assert.equal(toHex(buf, at, buf[at - 1]!), '0a090000');
  assert.equal(relayAgentInfo.find(buf, 5, n, 99), -1);
  assert.deepEqual((describeOption(82, buf.subarray(5, 5 + n)).value as { address?: string }[])[2]!.address, '10.9.0.0');
});
test('edge: option 82 sub-option running past the option is bad-option', () => {
  const d = relayAgentInfo.decode(fromHex('0105616263')!, 0, 5);
  assert.equal(!d.ok && d.error, ParseError.BAD_OPTION);
  assert.equal(relayAgentInfo.find(fromHex('0105616263')!, 0, 5, 1), -1);
});
test('edge: option 82 with a lone code byte is truncated', () => {
  const d = relayAgentInfo.decode(fromHex('01')!, 0, 1);
  assert.equal(!d.ok && d.error, ParseError.TRUNCATED);
});

test('option 55 list: encode/decode/describe', () => {
  const buf = new Uint8Array(10);
  assert.equal(paramRequestList.encode([1, 3, 121, 249], buf, 2), 4);
  assert.deepEqual(paramRequestList.decode(buf, 2, 4), [1, 3, 121, 249]);
  assert.deepEqual(describeOption(55, buf.subarray(2, 6)).names, ['subnet-mask', 'router', 'classless-static-routes', 'ms-classless-static-routes']);
});

test('describeOption reports malformed values instead of throwing', () => {
  assert.equal(describeOption(1, fromHex('ffff')!).error, 'bad-length');
  assert.equal(describeOption(51, fromHex('00')!).error, 'bad-length');
  assert.match(String(describeOption(121, fromHex('21')!).error), /bad-value/);
});
