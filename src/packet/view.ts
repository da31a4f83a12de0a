/**
 * What every protocol view shares: a window (bytes, offset, length) over someone else's buffer that
 * never copies. `wrap` re-points it without checks (for bytes already validated, e.g. by classify);
 * `wrapChecked` re-points and validates with the protocol's checker, and the view may be read only
 * when that returned ParseError.NONE.
 */
import { ParseError } from './errors';

const EMPTY = new Uint8Array(0);

export abstract class View {
  bytes: Uint8Array;
  offset: number;
  length: number;

  constructor(bytes: Uint8Array = EMPTY, offset = 0, length = bytes.length - offset) {
    this.bytes = bytes;
    this.offset = offset;
    this.length = length;
  }

  wrap(bytes: Uint8Array, offset: number, length: number): this {
    this.bytes = bytes;
    this.offset = offset;
    this.length = length;
    return this;
  }

  wrapChecked(bytes: Uint8Array, offset: number, length: number): ParseError {
    this.wrap(bytes, offset, length);
    return this.validate(bytes, offset, length);
  }

  /** The protocol's checked constructor (checkUdp, checkIpv4, ...). */
  protected abstract readonly validate: Checker;
}

/** A protocol's checked constructor: ParseError.NONE when the view may be read. */
export type Checker = (bytes: Uint8Array, offset: number, length: number) => ParseError;

/**
 * The View base for a protocol whose checker is `check`: instances validate with it (wrapChecked)
 * and the class offers it as `Proto.check(bytes, offset, length)`.
 */
export function checkedView(check: Checker) {
  abstract class Checked extends View {
    static readonly check: Checker = check;
    protected declare readonly validate: Checker;
  }
  // The checker itself on the prototype, not a method that calls it: a method shared by every view
  // class would call eight checkers from one site (megamorphic, never inlined: 4x slower measured).
  Object.defineProperty(Checked.prototype, 'validate', { value: check });
  return Checked;
}
