/**
 * Why a packet (or a part of it) could not be read. Values are stable numbers so the hot path can
 * store them in typed arrays; PARSE_ERROR_NAMES gives their printable names. Append only.
 */
export const enum ParseError {
  NONE = 0,
  TRUNCATED = 1,
  BAD_VERSION = 2,
  BAD_HEADER_LENGTH = 3,
  BAD_TOTAL_LENGTH = 4,
  BAD_LENGTH = 5,
  BAD_OPTION = 6,
  BAD_CHECKSUM = 7,
  BAD_MAGIC = 8,
  OPTION_LOOP = 9,
  UNSUPPORTED = 10,
  /** ESP SPI 0 (RFC 4303 2.1: "The SPI value of zero (0) is reserved ... MUST NOT be sent"). */
  BAD_SPI = 11,
  /** A field holds a value the protocol forbids (e.g. DHCP op not 1/2, a route prefix > 32). */
  BAD_VALUE = 12,
}

export const PARSE_ERROR_NAMES: readonly string[] = [
  'none', 'truncated', 'bad-version', 'bad-header-length', 'bad-total-length', 'bad-length',
  'bad-option', 'bad-checksum', 'bad-magic', 'option-loop', 'unsupported', 'bad-spi', 'bad-value',
];

export function parseErrorName(e: number): string {
  return PARSE_ERROR_NAMES[e] ?? `error-${e}`;
}

/** Result of a Repr decode (tools and tests; the hot path uses views and plain error codes). */
export type Parsed<T> =
  | { ok: true; value: T }
  | { ok: false; error: ParseError; /** which field or layer */ where: string };

export function fail<T>(error: ParseError, where: string): Parsed<T> {
  return { ok: false, error, where };
}

export function ok<T>(value: T): Parsed<T> {
  return { ok: true, value };
}
