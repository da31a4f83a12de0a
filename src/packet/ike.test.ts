import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IkeHeader, IkePayloadIter, ikeRepr, checkIke, exchangeName, FLAG_V2_INITIATOR, FLAG_V2_RESPONSE } from './ike';
import { decodeSaV2, decodeNotifyV2 } from './ike-payloads';
import { ParseError } from './errors';
import { toHex } from './bytes';
import { capturedPackets, udpPayload } from '../../test/kit/packet';

// Source: test/captures/ike-esp-natt.pcap — strongSwan 5.9.8 (charon, kernel-libipsec) IKEv2 PSK
// between two lab namespaces, made by test/captures/make-ipsec.sh. #1 is the initiator's
// IKE_SA_INIT (UDP 500), #2 the response, #3 IKE_AUTH on 4500 behind the non-ESP marker.
const cap = capturedPackets('ike-esp-natt.pcap');
const INIT = udpPayload(cap[0]!.ip);
const INIT_R = udpPayload(cap[1]!.ip);
const AUTH = udpPayload(cap[2]!.ip).subarray(4);

// Source: test/captures/crafted.pcap (scapy 2.5, see make-dhcp.sh): #2 IKEv1 Main Mode (SA + Vendor ID),
// #3 IKEv1 Quick Mode with the E flag behind the non-ESP marker.
const crafted = capturedPackets('crafted.pcap');
const V1_MM = udpPayload(crafted[1]!.ip);
const V1_QM = udpPayload(crafted[2]!.ip).subarray(4);

test('deconstruct the real IKE_SA_INIT request', () => {
  assert.equal(checkIke(INIT, 0, INIT.length), ParseError.NONE);
  const h = new IkeHeader(INIT);
  assert.equal(toHex(INIT, 0, 8), '96ea5448fd1408cf');
  assert.equal(h.rspiIsZero, true);
  assert.equal(h.majorVersion, 2);
  assert.equal(h.minorVersion, 0);
  assert.equal(h.exchange, 34);
  assert.equal(exchangeName(h.exchange), 'IKE_SA_INIT');
  assert.equal(h.flags, FLAG_V2_INITIATOR);
  assert.equal(h.isInitiator, true);
  assert.equal(h.isResponse, false);
  assert.equal(h.messageId, 0);
  assert.equal(h.messageLength, 462);
  assert.equal(h.nextPayload, 33);
  const it = new IkePayloadIter().reset(INIT, 0, INIT.length);
  const types: number[] = [];
  const notifies: number[] = [];
  while (it.next()) {
    types.push(it.type);
    if (it.type === 41) notifies.push(decodeNotifyV2(INIT, it.bodyOffset, it.bodyLength).notifyType as number);
    if (it.type === 34) assert.equal((INIT[it.bodyOffset]! << 8) | INIT[it.bodyOffset + 1]!, 14, 'KE group MODP_2048');
    if (it.type === 40) assert.equal(it.bodyLength, 32, 'nonce length');
    if (it.type === 33) {
      const sa = decodeSaV2(INIT, it.bodyOffset, it.bodyLength);
      assert.deepEqual(sa, { proposals: [{ number: 1, protocol: 'IKE', transforms: [
        { type: 'ENCR', id: 'AES_CBC', keyLength: 128 }, { type: 'INTEG', id: 'HMAC_SHA2_256_128' },
        { type: 'PRF', id: 'HMAC_SHA2_256' }, { type: 'KE', id: 'MODP_2048' }] }] });
    }
  }
  assert.equal(it.error, ParseError.NONE);
  assert.equal(it.encrypted, false);
  assert.deepEqual(types, [33, 34, 40, 41, 41, 41, 41, 41]);
  assert.deepEqual(notifies, [16388, 16389, 16430, 16431, 16406]);
});

test('the response: responder SPI set, R flag', () => {
  const h = new IkeHeader(INIT_R);
  assert.equal(toHex(INIT_R, 8, 8), 'ebc1c8e2be1eb533');
  assert.equal(h.flags, FLAG_V2_RESPONSE);
  assert.equal(h.isResponse, true);
});

test('IKE_AUTH: the walk yields the SK payload and stops (first inner payload IDi)', () => {
  const it = new IkePayloadIter().reset(AUTH, 0, AUTH.length);
  assert.equal(it.next(), true);
  assert.equal(it.type, 46);
  assert.equal(it.nextType, 35);
  assert.equal(it.next(), false);
  assert.equal(it.encrypted, true);
  assert.equal(it.error, ParseError.NONE);
  assert.equal(new IkeHeader(AUTH).isEncrypted, true);
});

test('construct: decode → encode gives the captured bytes back, also at an offset', () => {
  for (const msg of [INIT, INIT_R, AUTH, V1_MM, V1_QM]) {
    const d = ikeRepr.decode(msg, 0, msg.length);
    assert.ok(d.ok, 'decodes');
    const buf = new Uint8Array(msg.length + 40).fill(0xcc);
    assert.equal(ikeRepr.encode(d.value, buf, 17), msg.length);
    assert.equal(toHex(buf, 17, msg.length), toHex(msg));
    assert.equal(buf[16], 0xcc);
    assert.equal(buf[17 + msg.length], 0xcc);
    const again = ikeRepr.decode(buf, 17, msg.length);
    assert.ok(again.ok);
    assert.deepEqual(again.value, d.value);
  }
});

test('IKEv1 Main Mode: version 1, exchange 2, SA then Vendor ID', () => {
  const h = new IkeHeader(V1_MM);
  assert.equal(h.majorVersion, 1);
  assert.equal(exchangeName(h.exchange), 'Main Mode');
  const it = new IkePayloadIter().reset(V1_MM, 0, V1_MM.length);
  const t: number[] = [];
  while (it.next()) t.push(it.type);
  assert.deepEqual(t, [1, 13]);
  assert.equal(it.error, ParseError.NONE);
});

test('IKEv1 with the E flag: nothing to walk, encrypted', () => {
  const it = new IkePayloadIter().reset(V1_QM, 0, V1_QM.length);
  assert.equal(it.next(), false);
  assert.equal(it.encrypted, true);
  assert.equal(it.error, ParseError.NONE);
  assert.equal(new IkeHeader(V1_QM).exchange, 32);
});

function mutated(f: (b: Uint8Array) => void): Uint8Array { const b = INIT.slice(); f(b); return b; }
function walkError(b: Uint8Array, len = b.length): ParseError {
  const it = new IkePayloadIter().reset(b, 0, len);
  let n = 0;
  while (it.next()) n++;
  assert.ok(n < 1000);
  return it.error;
}

test('edge: shorter than the 28-byte header', () => assert.equal(checkIke(INIT, 0, 27), ParseError.TRUNCATED));
test('edge: major version 3', () => assert.equal(checkIke(mutated((b) => { b[17] = 0x30; }), 0, INIT.length), ParseError.BAD_VERSION));
test('edge: Length below 28', () => assert.equal(checkIke(mutated((b) => { b[27] = 27; b[26] = 0; }), 0, INIT.length), ParseError.BAD_LENGTH));
test('edge: Length beyond the datagram', () => assert.equal(checkIke(INIT, 0, INIT.length - 1), ParseError.BAD_LENGTH));
test('edge: payload length < 4', () => assert.equal(walkError(mutated((b) => { b[30] = 0; b[31] = 3; })), ParseError.BAD_LENGTH));
test('edge: payload length past the message', () => assert.equal(walkError(mutated((b) => { b[30] = 0xff; })), ParseError.BAD_LENGTH));
test('edge: chain ends (next 0) before the message does', () => assert.equal(walkError(mutated((b) => { b[28] = 0; })), ParseError.BAD_LENGTH));
test('edge: chain names a payload after the last byte', () => {
  // Give the last Notify a next-payload: the walk runs out of bytes.
  const b = INIT.slice();
  const it = new IkePayloadIter().reset(b, 0, b.length);
  let last = 0;
  while (it.next()) last = it.offset;
  b[last] = 41;
  assert.equal(walkError(b), ParseError.TRUNCATED);
});
test('edge: SK not the last payload', () => {
  const b = INIT.slice();
  b[16] = 46; // header says the first payload (really the SA) is SK
  assert.equal(walkError(b), ParseError.BAD_LENGTH);
});
