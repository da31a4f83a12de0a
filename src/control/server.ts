/**
 * The running engine's Unix control socket (owner-only: the directory 0700 and ours alone, the
 * socket 0600).
 *
 * Start: the directory must be private (src/state/private.ts). At the socket path, a stale socket
 * left by a killed sluice is replaced; a live one means another sluice runs there; anything else
 * (a regular file, a symlink, a directory) is refused and left alone.
 * Connections: requests are JSON lines answered strictly in request order, one at a time; while a
 * client has `maxPending` requests waiting or does not read its answers, its socket is not read
 * (backpressure instead of memory); idle connections are closed after `idleMs`; at most
 * `maxConnections` at once (more are told so and closed); close() ends every open connection, so
 * an idle client cannot keep a stopping sluice alive, and tells a client whose request is under way
 * (a reload, a trace stream) why, instead of leaving it to wonder at a closed socket.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { privateDir } from '../state/private';
import { MAX_REQUEST_BYTES, StoppingError, type ControlRequest, type ControlResponse } from './protocol';

export type ControlHandler = (req: ControlRequest) => unknown | Promise<unknown>;

export interface ControlServerOptions {
  /** Connections at once (default 16). */
  maxConnections?: number;
  /** A connection with no request and no answer pending for this long is closed (default 60 s). */
  idleMs?: number;
  /** Requests read ahead of their answers per connection before reading pauses (default 16). */
  maxPending?: number;
}

/** How long close() lets a client with a request under way take its last line before the connection is destroyed. */
const CLOSE_GRACE_MS = 1000;

/** Longest path a sockaddr_un holds (108 bytes with the terminating NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private readonly sockets = new Set<Socket>();
  /** Connections with a request read and its answer (or stream) not finished. */
  private readonly answering = new Set<Socket>();

  private constructor(readonly server: Server, private readonly opts: Required<ControlServerOptions>, private readonly handler: ControlHandler) {
    server.on('connection', (sock) => this.accept(sock));
  }

  static async start(path: string, handler: ControlHandler, o: ControlServerOptions = {}): Promise<ControlServer> {
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
      throw new Error(`control socket path is ${Buffer.byteLength(path)} bytes; a Unix socket path holds at most ${MAX_SOCKET_PATH_BYTES}`);
    }
    privateDir(dirname(path), 'control socket directory');
    let st = null;
    try { st = lstatSync(path); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
    if (st !== null) {
      if (!st.isSocket()) throw new Error(`${path} exists and is not a socket (${st.isSymbolicLink() ? 'a symlink' : st.isDirectory() ? 'a directory' : 'a file'}): not touching it; remove it or set control.socket`);
      if (await isLive(path)) throw new Error(`another sluice is already listening on ${path} (stop it, or set control.socket)`);
      unlinkSync(path);
    }
    const opts = { maxConnections: o.maxConnections ?? 16, idleMs: o.idleMs ?? 60000, maxPending: o.maxPending ?? 16 };
    const self = new ControlServer(createServer(), opts, handler);
    await new Promise<void>((resolve, reject) => {
      self.server.once('error', reject);
      const old = process.umask(0o177);
      self.server.listen(path, () => { process.umask(old); resolve(); });
    });
    chmodSync(path, 0o600);
    return self;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Stops listening and ends every open connection. reason: a connection with a request under way
   * first gets `{"ok":false,"error":reason,"stopping":true}` as its answer (or as the end of its
   * stream) and is then ended, destroyed if its client has not closed within CLOSE_GRACE_MS.
   */
  close(reason?: string): Promise<void> {
    for (const s of this.sockets) {
      if (reason === undefined || !this.answering.has(s) || ended(s)) { s.destroy(); continue; }
      s.end(`${JSON.stringify({ ok: false, error: reason, stopping: true })}\n`);
      const timer = setTimeout(() => s.destroy(), CLOSE_GRACE_MS);
      s.once('close', () => clearTimeout(timer));
    }
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(sock: Socket): void {
    if (this.sockets.size >= this.opts.maxConnections) {
      sock.end(`${JSON.stringify({ ok: false, error: `too many control connections (${this.opts.maxConnections})` })}\n`);
      sock.destroySoon?.();
      return;
    }
    this.sockets.add(sock);
    sock.once('close', () => { this.sockets.delete(sock); this.answering.delete(sock); });
    sock.on('error', () => sock.destroy());
    sock.setEncoding('utf8');
    const lines: string[] = [];
    let buf = '';
    let busy = false;
    // Idle: nothing read or written for idleMs while no request is being answered.
    sock.setTimeout(this.opts.idleMs, () => { if (!busy && lines.length === 0) sock.destroy(); });
    const flowControl = (): void => {
      if (lines.length >= this.opts.maxPending || sock.writableNeedDrain) sock.pause();
      else if (sock.isPaused()) sock.resume();
    };
    const next = async (): Promise<void> => {
      if (busy) return;
      busy = true;
      this.answering.add(sock);
      while (lines.length > 0 && !ended(sock)) {
        const resp = await answer(lines.shift()!, this.handler);
        if (ended(sock)) break; // close() answered it already
        // A streamed answer (a large listing made in slices) goes out chunk by chunk, paced by the reader.
        if (resp.ok && isAsyncIterable(resp.result)) { await streamTo(sock, resp.result); continue; }
        // Waits for the client to take the answer before handling its next request.
        if (!sock.write(`${JSON.stringify(resp)}\n`)) {
          sock.pause();
          await new Promise<void>((r) => { sock.once('drain', r); sock.once('close', r); });
        }
      }
      busy = false;
      this.answering.delete(sock);
      if (!ended(sock)) flowControl();
    };
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() !== '') lines.push(line);
      }
      if (buf.length > MAX_REQUEST_BYTES) {
        lines.length = 0;
        sock.end(`${JSON.stringify({ ok: false, error: 'request too large' })}\n`);
        return;
      }
      flowControl();
      void next();
    });
  }
}

/** The control server (see ControlServer). */
export function startControlServer(path: string, handler: ControlHandler, opts?: ControlServerOptions): Promise<ControlServer> {
  return ControlServer.start(path, handler, opts);
}

/** Nothing more may be written: destroyed, or ended by close(). */
function ended(sock: Socket): boolean {
  return sock.destroyed || sock.writableEnded;
}

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/**
 * A streamed result (a large listing produced in slices): `{"ok":true,"stream":true}`, then one
 * `{"chunk":...}` line per chunk, then `{"end":true}` (or `{"ok":false,"error":...}`). The producer
 * waits while the socket's buffer is full, so a slow reader holds memory to one chunk.
 * A chunk that is a Uint8Array is JSON text already (made without objects, e.g. nat/listjson.ts):
 * it is sent as is, and the producer is resumed only once the socket has taken it (it may reuse
 * the buffer).
 */
async function streamTo(sock: Socket, it: AsyncIterable<unknown>): Promise<void> {
  sock.write(`${JSON.stringify({ ok: true, stream: true })}\n`);
  try {
    for await (const chunk of it) {
      if (ended(sock)) return; // leaving the loop ends the producer (its return() runs)
      if (chunk instanceof Uint8Array) {
        sock.write('{"chunk":');
        sock.write(chunk);
        await written(sock, '}\n');
      } else if (!sock.write(`${JSON.stringify({ chunk })}\n`)) {
        await new Promise<void>((r) => { sock.once('drain', r); sock.once('close', r); });
      }
    }
    if (!ended(sock)) sock.write(`${JSON.stringify({ end: true })}\n`);
  } catch (e) {
    if (!ended(sock)) sock.write(`${JSON.stringify(failure(e))}\n`);
  }
}

/** Resolves when the socket has handed `data` (and everything before it) to the kernel, or closed. */
function written(sock: Socket, data: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => { sock.off('close', done); resolve(); };
    sock.once('close', done);
    sock.write(data, () => done());
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
    return failure(e);
  }
}

function failure(e: unknown): ControlResponse {
  return { ok: false, error: (e as Error).message, ...(e instanceof StoppingError ? { stopping: true as const } : {}) };
}
