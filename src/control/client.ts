/**
 * One request over the control socket, with errors an operator can act on. The socket must belong
 * to us or to root before its answer is trusted: a socket another user put at the path (in a
 * directory they can write) would otherwise answer root's `sluice reload`.
 */
import { lstatSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { ControlRequest } from './protocol';

/** Throws when `path` exists but is not a socket owned by our effective uid or root. */
export function checkSocketOwner(path: string): void {
  let st;
  try { st = lstatSync(path); } catch { return; } // missing: the connect error says what to do
  const me = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  if (!st.isSocket()) throw new Error(`${path} is not a socket: not talking to it`);
  if (st.uid !== me && st.uid !== 0) {
    throw new Error(`${path} belongs to uid ${st.uid}, neither you (uid ${me}) nor root: not trusting its answers (another user may have replaced it)`);
  }
}

export function controlRequest(path: string, req: ControlRequest, timeoutMs = 10000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    try { checkSocketOwner(path); } catch (e) { reject(e as Error); return; }
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer from ${path} within ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      try {
        const resp = JSON.parse(buf.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string };
        if (resp.ok) resolve(resp.result);
        else reject(new Error(resp.error ?? 'failed'));
      } catch (e) {
        reject(new Error(`bad answer from ${path}: ${(e as Error).message}`));
      }
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
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
        let m: { ok?: boolean; stream?: boolean; chunk?: unknown; end?: boolean; error?: string; result?: unknown };
        try { m = JSON.parse(line) as typeof m; } catch (e) { fail(new Error(`bad answer from ${path}: ${(e as Error).message}`)); return; }
        if (m.ok === false) { fail(new Error(m.error ?? 'failed')); return; }
        if (!started) {
          started = true;
          if (m.stream !== true) { onChunk(m.result); finish(); return; } // a plain answer
          continue;
        }
        if (m.end) { finish(); return; }
        onChunk(m.chunk);
      }
    });
    sock.once('close', () => fail(new Error(`${path} closed the connection mid-answer`)));
    sock.once('error', (e: NodeJS.ErrnoException) => {
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? `is sluice running? (no control socket at ${path}; pass --socket or -c CONFIG)`
        : e.code === 'EACCES' ? `permission denied on ${path} (the socket is owner-only: run as the same user, usually root)` : e.message;
      fail(new Error(hint));
    });
  });
}
