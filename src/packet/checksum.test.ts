import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksumAdjust, checksumAdjust32, foldSum, internetChecksum, onesSum, pseudoHeaderSum4 } from './checksum';
import { fromHex } from './bytes';

test('RFC 1071 1.1 example: sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2, checksum 220d', () => {
  const b = fromHex('0001f203f4f5f6f7')!;
  assert.equal(foldSum(onesSum(b, 0, b.length)), 0xddf2);
  assert.equal(internetChecksum(b, 0, b.length), 0x220d);
});

test('odd length pads the last byte with zero (RFC 1071)', () => {
  const b = fromHex('0102ab')!;
  assert.equal(foldSum(onesSum(b, 0, 3)), 0x0102 + 0xab00);
});

test('checksum at a non-zero offset ignores the bytes around the region', () => {
  const b = fromHex('ffff0001f203f4f5f6f7ffff')!;
  assert.equal(internetChecksum(b, 2, 8), 0x220d);
});

test('RFC 1624 4 example: HC=0xDD2F, m=0x5555 -> m\'=0x3285 gives 0x0000 with eqn. 3', () => {
  assert.equal(checksumAdjust(0xdd2f, 0x5555, 0x3285), 0x0000);
});

test('incremental update equals full recompute for random 16- and 32-bit changes', () => {
  let seed = 12345;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed; };
  for (let n = 0; n < 2000; n++) {
    const b = new Uint8Array(20);
    for (let i = 0; i < 20; i++) b[i] = rnd() & 0xff;
    b[10] = 0; b[11] = 0;
    const c0 = internetChecksum(b, 0, 20);
    const at = 12 + (rnd() % 2) * 4;
    const old32 = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
    const new32 = rnd();
    b[at] = new32 >>> 24; b[at + 1] = (new32 >>> 16) & 0xff; b[at + 2] = (new32 >>> 8) & 0xff; b[at + 3] = new32 & 0xff;
    const full = internetChecksum(b, 0, 20);
    const inc = checksumAdjust32(c0, old32, new32);
    // Both are valid one's-complement representations; with a non-zero header they are equal.
    assert.equal(inc, full, `n=${n}`);
    const old16 = (b[4]! << 8) | b[5]!;
    const new16 = rnd() & 0xffff;
    b[4] = new16 >> 8; b[5] = new16 & 0xff;
    assert.equal(checksumAdjust(full, old16, new16), internetChecksum(b, 0, 20));
  }
});

test('IPv4 pseudo-header sum', () => {
  assert.equal(pseudoHeaderSum4(0xc0a80001, 0xc0a800c7, 17, 8), 0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7 + 17 + 8);
});
