/**
 * The running engine's Unix control socket (owner-only: the directory 0700, the socket 0600).
 * A stale socket left by a killed sluice is replaced; a live one means another sluice runs there.
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { MAX_REQUEST_BYTES, type ControlRequest, type ControlResponse } from './protocol';

export type ControlHandler = (req: ControlRequest) => unknown | Promise<unknown>;

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

export async function startControlServer(path: string, handler: ControlHandler): Promise<Server> {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(path)) {
    if (await isLive(path)) throw new Error(`another sluice is already listening on ${path} (stop it, or set control.socket)`);
    unlinkSync(path);
  }
  const server = createServer((sock) => serve(sock, handler));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const old = process.umask(0o177);
    server.listen(path, () => { process.umask(old); resolve(); });
  });
  chmodSync(path, 0o600);
  return server;
}

function serve(sock: Socket, handler: ControlHandler): void {
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_REQUEST_BYTES) {
      sock.end(`${JSON.stringify({ ok: false, error: 'request too large' })}\n`);
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === '') continue;
      void answer(line, handler).then((resp) => { if (!sock.destroyed) sock.write(`${JSON.stringify(resp)}\n`); });
    }
  });
}

async function answer(line: string, handler: ControlHandler): Promise<ControlResponse> {
  let req: ControlRequest;
  try {
    req = JSON.parse(line) as ControlRequest;
    if (typeof req !== 'object' || req === null || typeof req.cmd !== 'string') throw new Error('missing "cmd"');
  } catch (e) {
    return { ok: false, error: `bad request: ${(e as Error).message}` };
  }
  try {
    return { ok: true, result: await handler(req) };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
