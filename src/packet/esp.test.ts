import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EspPacket, checkEsp, espRepr, nattKind, NattKind } from './esp';
import { fromHex, toHex } from './bytes';
import { ParseError } from './errors';

test('deconstruct SPI and sequence number', () => {
  const b = fromHex('c0ffee0100000007aabbcc')!;
  assert.equal(checkEsp(b, 0, b.length), ParseError.NONE);
  const e = new EspPacket(b);
  assert.equal(e.spi, 0xc0ffee01);
  assert.equal(e.seq, 7);
  assert.equal(e.payloadLength, 3);
});

test('construct and round trip at an offset', () => {
  const r = { spi: 0x01020304, seq: 0xfffffffe, payload: fromHex('99887766')! };
  const buf = new Uint8Array(40);
  assert.equal(espRepr.encode(r, buf, 9), 12);
  assert.equal(toHex(buf, 9, 12), '01020304fffffffe99887766');
  const d = espRepr.decode(buf, 9, 12);
  assert.ok(d.ok);
  assert.deepEqual(d.value, r);
});

test('edge: SPI 0 is bad-spi (RFC 4303 2.1)', () => {
  assert.equal(checkEsp(fromHex('0000000000000001')!, 0, 8), ParseError.BAD_SPI);
});
test('edge: shorter than SPI + seq is truncated', () => {
  assert.equal(checkEsp(fromHex('01020304000000')!, 0, 7), ParseError.TRUNCATED);
});

test('UDP 4500: keepalive, non-ESP marker, ESP, invalid (RFC 3948)', () => {
  assert.equal(nattKind(fromHex('ff')!, 0, 1), NattKind.KEEPALIVE);
  assert.equal(nattKind(fromHex('fe')!, 0, 1), NattKind.INVALID);
  assert.equal(nattKind(fromHex('00000000')!, 0, 4), NattKind.IKE);
  assert.equal(nattKind(fromHex('0000000100000001')!, 0, 8), NattKind.ESP);
  assert.equal(nattKind(fromHex('00000001000000')!, 0, 7), NattKind.INVALID);
  assert.equal(nattKind(fromHex('0000')!, 0, 2), NattKind.INVALID);
});
