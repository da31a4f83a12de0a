/**
 * Why a packet (or a part of it) could not be read. Values are stable numbers so the hot path can
 * store them in typed arrays; PARSE_ERROR_NAMES gives their printable names.
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
}

export const PARSE_ERROR_NAMES: readonly string[] = [
  'none', 'truncated', 'bad-version', 'bad-header-length', 'bad-total-length', 'bad-length',
  'bad-option', 'bad-checksum', 'bad-magic', 'option-loop', 'unsupported',
];
