/**
 * Directories and files only sluice's own user may change: the state directory (NAT journal) and
 * the control socket's directory. sluice runs as root; a directory another user can write lets
 * that user swap what sluice opens there (a symlink at `nat.journal.tmp` that root then truncates,
 * a socket that answers root's `sluice reload`). So:
 * - privateDir(): an existing directory must be a real directory (not a symlink), owned by our
 *   effective uid, and not writable by group or others; a missing one is created 0700.
 * - openPrivate(): files are opened with O_NOFOLLOW (a symlink is refused, never followed);
 *   temporaries with O_CREAT | O_EXCL after removing whatever sits at the name (never through it).
 * Errors say which path is wrong and how to fix it.
 */
import { constants, lstatSync, mkdirSync, openSync, unlinkSync, type Stats } from 'node:fs';

export class UnsafePathError extends Error {
  constructor(readonly path: string, why: string, fix: string) {
    super(`${path}: ${why}; ${fix}`);
    this.name = 'UnsafePathError';
  }
}

const euid = (): number => (typeof process.geteuid === 'function' ? process.geteuid() : 0);

function lstatOrNull(path: string): Stats | null {
  try { return lstatSync(path); } catch (e) { if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; throw e; }
}

/** Checks (or creates, 0700) a directory only our user may write. Throws UnsafePathError. */
export function privateDir(path: string, what = 'state directory'): void {
  let st = lstatOrNull(path);
  if (st === null) {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    st = lstatSync(path);
  }
  if (st.isSymbolicLink()) throw new UnsafePathError(path, `the ${what} is a symlink`, 'point the config at the real directory');
  if (!st.isDirectory()) throw new UnsafePathError(path, `the ${what} is not a directory`, 'remove it or choose another path');
  if (st.uid !== euid()) {
    throw new UnsafePathError(path, `the ${what} is owned by uid ${st.uid}, not by sluice's user (uid ${euid()})`,
      `chown ${euid()} ${path} (or remove it and let sluice create it)`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw new UnsafePathError(path, `the ${what} is writable by ${(st.mode & 0o002) ? 'others' : 'its group'} (mode ${(st.mode & 0o777).toString(8)})`,
      `chmod go-w ${path}`);
  }
}

/**
 * Opens a file in a private directory without following a symlink at its name. `temp`: the file is
 * created fresh (whatever sits at the name is removed first, and O_EXCL makes sure nobody put a new
 * one there in between).
 */
export function openPrivate(path: string, flags: 'r' | 'a' | 'w', opts: { temp?: boolean; mode?: number } = {}): number {
  const c = constants;
  // Node opens every file descriptor close-on-exec already.
  let f = c.O_NOFOLLOW;
  if (flags === 'r') f |= c.O_RDONLY;
  else if (flags === 'a') f |= c.O_WRONLY | c.O_APPEND | c.O_CREAT;
  else f |= c.O_WRONLY | c.O_CREAT | c.O_TRUNC;
  if (opts.temp) {
    const st = lstatOrNull(path);
    if (st !== null) unlinkSync(path); // removes a symlink itself, never its target
    f = (f & ~c.O_TRUNC) | c.O_CREAT | c.O_EXCL;
  }
  try {
    return openSync(path, f, opts.mode ?? 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new UnsafePathError(path, 'is a symlink', 'remove it');
    throw e;
  }
}
