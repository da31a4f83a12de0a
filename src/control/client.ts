/**
 * One request over the control socket, with errors an operator can act on. The socket must belong
 * to us or to root before its answer is trusted: a socket another user put at the path (in a
 * directory they can write) would otherwise answer root's `sluice reload`. One more owner is
 * trusted: a service user root gave a private directory to (systemd's RuntimeDirectory=, as in
 * packaging/systemd), i.e. the socket's directory belongs to the socket's owner, is writable by no
 * one else, its parent belongs to root and is writable by no one else, and every directory above
 * belongs to root and is writable by no one else or sticky.
 */
import { lstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { createConnection } from 'node:net';
import type { ControlRequest } from './protocol';

/**
 * An error sluice answered, or the connection it closed before answering. stopping: sluice is
 * stopping (it said so, or it closed the connection mid-request), so what was asked did not happen
 * and is not a refusal either (`sluice reload` tells the two apart).
 */
export class ControlError extends Error {
  constructor(message: string, readonly stopping: boolean) {
    super(message);
  }
}

function closedEarly(path: string): ControlError {
  return new ControlError(`${path} closed the connection before answering: sluice stopped or crashed (its log says why)`, true);
}

/** Throws when `path` exists but is not a socket owned by our effective uid or root. */
export function checkSocketOwner(path: string): void {
  let st;
  try { st = lstatSync(path); } catch { return; } // missing: the connect error says what to do
  const me = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  if (!st.isSocket()) throw new Error(`${path} is not a socket: not talking to it`);
  if (st.uid !== me && st.uid !== 0 && !grantedByRoot(path, st.uid)) {
    throw new Error(`${path} belongs to uid ${st.uid}, neither you (uid ${me}) nor root: not trusting its answers (another user may have replaced it)`);
  }
}

/** True when only root can have made `path`'s directory the private directory of `uid`. */
function grantedByRoot(path: string, uid: number): boolean {
  try {
    let dir = dirname(path);
    const own = lstatSync(dir);
    if (!own.isDirectory() || own.uid !== uid || (own.mode & 0o022) !== 0) return false;
    // The parent must be root's and writable by no one else: in a sticky /tmp anyone could have
    // made the directory. Higher up, a sticky directory is fine (nobody can rename root's entry).
    for (let first = true; ; first = false) {
      const parent = dirname(dir);
      if (parent === dir) return !first;
      dir = parent;
      const st = lstatSync(dir);
      if (!st.isDirectory() || st.uid !== 0) return false;
      if ((st.mode & 0o022) !== 0 && (first || (st.mode & 0o1000) === 0)) return false;
    }
  } catch {
    return false;
  }
}

export function controlRequest(path: string, req: ControlRequest, timeoutMs = 10000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    try { checkSocketOwner(path); } catch (e) { reject(e as Error); return; }
    const sock = createConnection(path);
    let buf = '';
    let answered = false;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer from ${path} within ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0 || answered) return;
      answered = true;
      clearTimeout(timer);
      sock.end();
      try {
        const resp = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string; stopping?: boolean };
        if (resp.ok) resolve(resp.result);
        else reject(new ControlError(resp.error ?? 'failed', resp.stopping === true));
      } catch (e) {
        reject(new Error(`bad answer from ${path}: ${(e as Error).message}`));
      }
    });
    // Closed with no answer (sluice stopped or died): said at once, not after the timeout.
    sock.once('close', () => { clearTimeout(timer); if (!answered) reject(closedEarly(path)); });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      answered = true;
      clearTimeout(timer);
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? `is sluice running? (no control socket at ${path}; pass --socket or -c CONFIG)`
        : e.code === 'EACCES' ? `permission denied on ${path} (the socket is owner-only: run as the same user, usually root)` : e.message;
      reject(new Error(hint));
    });
  });
}

/**
 * A request whose answer is streamed (see control/server.ts streamTo): onChunk gets each chunk as
 * it arrives; resolves at the end. The timeout is per silence, not for the whole stream.
 */
export function controlStream(path: string, req: ControlRequest, onChunk: (chunk: unknown) => void, timeoutMs = 10000): Promise<void> {
  return new Promise((resolve, reject) => {
    try { checkSocketOwner(path); } catch (e) { reject(e as Error); return; }
    const sock = createConnection(path);
    let buf = '';
    let started = false;
    let done = false;
    let timer = setTimeout(() => fail(new Error(`no answer from ${path} within ${timeoutMs} ms`)), timeoutMs);
    const fail = (e: Error): void => { if (done) return; done = true; clearTimeout(timer); sock.destroy(); reject(e); };
    const finish = (): void => { done = true; clearTimeout(timer); sock.end(); resolve(); };
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => fail(new Error(`${path} went silent for ${timeoutMs} ms mid-answer`)), timeoutMs);
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let m: { ok?: boolean; stream?: boolean; chunk?: unknown; end?: boolean; error?: string; result?: unknown; stopping?: boolean };
        try { m = JSON.parse(line) as typeof m; } catch (e) { fail(new Error(`bad answer from ${path}: ${(e as Error).message}`)); return; }
        if (m.ok === false) { fail(new ControlError(m.error ?? 'failed', m.stopping === true)); return; }
        if (!started) {
          started = true;
          if (m.stream !== true) { onChunk(m.result); finish(); return; } // a plain answer
          continue;
        }
        if (m.end) { finish(); return; }
        onChunk(m.chunk);
      }
    });
    sock.once('close', () => fail(started ? new ControlError(`${path} closed the connection mid-answer: sluice stopped or crashed (its log says why)`, true) : closedEarly(path)));
    sock.once('error', (e: NodeJS.ErrnoException) => {
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? `is sluice running? (no control socket at ${path}; pass --socket or -c CONFIG)`
        : e.code === 'EACCES' ? `permission denied on ${path} (the socket is owner-only: run as the same user, usually root)` : e.message;
      fail(new Error(hint));
    });
  });
}
