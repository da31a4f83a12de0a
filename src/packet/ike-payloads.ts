/**
 * Bodies of the cleartext IKE payloads that tools show (control path only, allocates):
 * IKEv2 SA proposals/transforms (RFC 7296 3.3), KE (3.4), Nonce (3.9), Notify (3.10), Vendor ID,
 * IDi/IDr; IKEv1 SA (DOI, situation), Notification (RFC 2408 3.14), KE, Nonce, Vendor ID, NAT-D.
 * Every decoder checks each length against the body it was given and reports `error` instead of
 * reading past it.
 *
 * IKEv2 Proposal substructure:                     IKEv2 Transform substructure:
 *   | Last Substruc |   RESERVED    | Proposal Length |   | Last Substruc | RESERVED | Transform Length |
 *   | Proposal Num  |  Protocol ID  |    SPI Size     |   | Transform Type| RESERVED |   Transform ID   |
 *   | Num  Transforms | SPI (variable) | Transforms...   |   | Transform Attributes ...                   |
 */
import { u16, u32, toHex } from './bytes';

export const TRANSFORM_TYPES: Readonly<Record<number, string>> = { 1: 'ENCR', 2: 'PRF', 3: 'INTEG', 4: 'KE', 5: 'ESN' };

const TRANSFORM_IDS: Readonly<Record<number, Readonly<Record<number, string>>>> = {
  1: { 3: '3DES', 12: 'AES_CBC', 13: 'AES_CTR', 18: 'AES_GCM_8', 19: 'AES_GCM_12', 20: 'AES_GCM_16', 28: 'CHACHA20_POLY1305' },
  2: { 1: 'HMAC_MD5', 2: 'HMAC_SHA1', 4: 'AES128_XCBC', 5: 'HMAC_SHA2_256', 6: 'HMAC_SHA2_384', 7: 'HMAC_SHA2_512', 8: 'AES128_CMAC' },
  3: { 1: 'HMAC_MD5_96', 2: 'HMAC_SHA1_96', 5: 'AES_XCBC_96', 8: 'AES_CMAC_96', 12: 'HMAC_SHA2_256_128', 13: 'HMAC_SHA2_384_192', 14: 'HMAC_SHA2_512_256' },
  4: { 2: 'MODP_1024', 5: 'MODP_1536', 14: 'MODP_2048', 15: 'MODP_3072', 16: 'MODP_4096', 19: 'ECP_256', 20: 'ECP_384', 21: 'ECP_521', 31: 'CURVE25519', 32: 'CURVE448' },
  5: { 0: 'NO_ESN', 1: 'ESN' },
};

export const PROTOCOL_IDS: Readonly<Record<number, string>> = { 1: 'IKE', 2: 'AH', 3: 'ESP' };

export const NOTIFY_TYPES: Readonly<Record<number, string>> = {
  1: 'UNSUPPORTED_CRITICAL_PAYLOAD', 4: 'INVALID_IKE_SPI', 5: 'INVALID_MAJOR_VERSION', 7: 'INVALID_SYNTAX',
  9: 'INVALID_MESSAGE_ID', 11: 'INVALID_SPI', 14: 'NO_PROPOSAL_CHOSEN', 17: 'INVALID_KE_PAYLOAD',
  24: 'AUTHENTICATION_FAILED', 34: 'SINGLE_PAIR_REQUIRED', 35: 'NO_ADDITIONAL_SAS', 36: 'INTERNAL_ADDRESS_FAILURE',
  37: 'FAILED_CP_REQUIRED', 38: 'TS_UNACCEPTABLE', 39: 'INVALID_SELECTORS', 43: 'TEMPORARY_FAILURE', 44: 'CHILD_SA_NOT_FOUND',
  16384: 'INITIAL_CONTACT', 16385: 'SET_WINDOW_SIZE', 16386: 'ADDITIONAL_TS_POSSIBLE', 16387: 'IPCOMP_SUPPORTED',
  16388: 'NAT_DETECTION_SOURCE_IP', 16389: 'NAT_DETECTION_DESTINATION_IP', 16390: 'COOKIE', 16391: 'USE_TRANSPORT_MODE',
  16392: 'HTTP_CERT_LOOKUP_SUPPORTED', 16393: 'REKEY_SA', 16394: 'ESP_TFC_PADDING_NOT_SUPPORTED',
  16395: 'NON_FIRST_FRAGMENTS_ALSO', 16396: 'MOBIKE_SUPPORTED', 16404: 'MULTIPLE_AUTH_SUPPORTED',
  16406: 'EAP_ONLY_AUTHENTICATION', 16417: 'CHILDLESS_IKEV2_SUPPORTED', 16418: 'REDIRECT_SUPPORTED',
  16430: 'IKEV2_FRAGMENTATION_SUPPORTED', 16431: 'SIGNATURE_HASH_ALGORITHMS', 16441: 'INTERMEDIATE_EXCHANGE_SUPPORTED',
};

const ID_TYPES: Readonly<Record<number, string>> = { 1: 'IPV4_ADDR', 2: 'FQDN', 3: 'RFC822_ADDR', 5: 'IPV6_ADDR', 9: 'DER_ASN1_DN', 11: 'KEY_ID' };

type Json = Record<string, unknown>;

/** IKEv2 SA payload body → proposals with transforms (and key-length attributes). */
export function decodeSaV2(b: Uint8Array, off: number, len: number): Json {
  const proposals: Json[] = [];
  const end = off + len;
  let p = off;
  while (p < end) {
    if (p + 8 > end) return { proposals, error: 'proposal truncated' };
    const last = b[p]!, pl = u16(b, p + 2);
    if (pl < 8 || p + pl > end) return { proposals, error: 'bad proposal length' };
    const spiSize = b[p + 6]!, nt = b[p + 7]!;
    if (8 + spiSize > pl) return { proposals, error: 'bad SPI size' };
    const prop: Json = { number: b[p + 4], protocol: PROTOCOL_IDS[b[p + 5]!] ?? b[p + 5] };
    if (spiSize) prop.spi = toHex(b, p + 8, spiSize);
    const transforms: Json[] = [];
    const pend = p + pl;
    let t = p + 8 + spiSize;
    for (let i = 0; i < nt; i++) {
      if (t + 8 > pend) return { proposals, error: 'transform truncated' };
      const tl = u16(b, t + 2);
      if (tl < 8 || t + tl > pend) return { proposals, error: 'bad transform length' };
      const type = b[t + 4]!, id = u16(b, t + 6);
      const tr: Json = { type: TRANSFORM_TYPES[type] ?? type, id: TRANSFORM_IDS[type]?.[id] ?? id };
      // Attributes: TV when the AF bit is set (Key Length = 14), else TLV.
      for (let a = t + 8; a + 4 <= t + tl;) {
        const at = u16(b, a);
        if (at & 0x8000) {
          if ((at & 0x7fff) === 14) tr.keyLength = u16(b, a + 2);
          a += 4;
        } else {
          a += 4 + u16(b, a + 2);
        }
      }
      transforms.push(tr);
      t += tl;
    }
    prop.transforms = transforms;
    proposals.push(prop);
    p += pl;
    if (last === 0) break;
  }
  return { proposals };
}

export function decodeNotifyV2(b: Uint8Array, off: number, len: number): Json {
  if (len < 4) return { error: 'notify truncated' };
  const spiSize = b[off + 1]!, type = u16(b, off + 2);
  if (4 + spiSize > len) return { error: 'bad SPI size' };
  const r: Json = { protocol: b[off]!, notifyType: type, name: NOTIFY_TYPES[type] ?? (type < 16384 ? 'error' : 'status') };
  if (spiSize) r.spi = toHex(b, off + 4, spiSize);
  if (len > 4 + spiSize) r.data = toHex(b, off + 4 + spiSize, len - 4 - spiSize);
  return r;
}

/** Describes one payload body (after the 4-byte generic header) for `sluice decode`. */
export function describeIkePayload(version: number, type: number, b: Uint8Array, off: number, len: number): Json {
  if (version === 2) {
    switch (type) {
      case 33: return decodeSaV2(b, off, len);
      case 34: return len < 4 ? { error: 'KE truncated' }
        : { group: TRANSFORM_IDS[4]![u16(b, off)] ?? u16(b, off), dataLength: len - 4 };
      case 35: case 36: return len < 4 ? { error: 'ID truncated' } : describeId(b, off, len);
      case 40: return { length: len, nonce: toHex(b, off, len) };
      case 41: return decodeNotifyV2(b, off, len);
      case 43: return { vendorId: toHex(b, off, len) };
      default: return { length: len };
    }
  }
  switch (type) {
    case 1: return len < 8 ? { error: 'SA truncated' } : { doi: u32(b, off), situation: u32(b, off + 4), length: len };
    case 4: return { dataLength: len };
    case 5: return len < 4 ? { error: 'ID truncated' } : describeId(b, off, len);
    case 10: return { length: len, nonce: toHex(b, off, len) };
    case 11: {
      if (len < 8) return { error: 'notification truncated' };
      const spiSize = b[off + 5]!, t = u16(b, off + 6);
      if (8 + spiSize > len) return { error: 'bad SPI size' };
      return { doi: u32(b, off), protocol: b[off + 4], notifyType: t, ...(spiSize ? { spi: toHex(b, off + 8, spiSize) } : {}) };
    }
    case 13: return { vendorId: toHex(b, off, len) };
    case 20: case 130: return { hash: toHex(b, off, len) };
    default: return { length: len };
  }
}

function describeId(b: Uint8Array, off: number, len: number): Json {
  const t = b[off]!;
  const data = b.subarray(off + 4, off + len);
  let value: string;
  if (t === 1 && data.length === 4) value = `${data[0]}.${data[1]}.${data[2]}.${data[3]}`;
  else if ((t === 2 || t === 3) && data.every((x) => x >= 0x20 && x < 0x7f)) value = String.fromCharCode(...data);
  else value = toHex(data);
  return { idType: ID_TYPES[t] ?? t, value };
}
