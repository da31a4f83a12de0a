/**
 * Standby side: accepts replication streams on `ha.listen`, authenticates them and applies their
 * records (records.ts). It writes nothing but the handshake reply and acknowledgements.
 *
 * One stream is current at a time: a newly authenticated one (its first session-keyed message
 * checked) replaces the previous, so a replayed HELLO cannot take a working stream down. A node
 * that is active refuses streams (`not_standby`, closed without a reply): two actives do not
 * overwrite each other's tables.
 */
import * as net from 'node:net';
import { splitListen } from '../config/core';
import { DIR_ACTIVE, DIR_STANDBY, FrameReader, FrameWriter, NONCE, ProtocolError, T, deriveKeys, f64s, nonce, readF64s } from './protocol';
import type { StandbyTables } from './records';
import type { HaCounters } from './counters';

export interface ReceiverOptions {
  key: Buffer;
  heartbeatMs: number;
  counters: HaCounters;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** The tables to apply into, or null while this node is active (streams are refused). */
  tables: () => StandbyTables | null;
  now: () => number;
}

/** Longest run of applying records between two event-loop turns. */
const APPLY_SLICE_MS = 2;

class Conn {
  reader: FrameReader;
  writer: FrameWriter;
  nonce: Buffer = Buffer.alloc(0);
  authed = false;
  applied = 0;
  frames = 0;
  lastFrameAt = Date.now();
  paused = false;
  constructor(readonly sock: net.Socket, key: Buffer) {
    this.reader = new FrameReader(key, DIR_ACTIVE);
    this.writer = new FrameWriter(key, DIR_STANDBY);
  }
}

export class Receiver {
  private server: net.Server | null = null;
  private current: Conn | null = null;
  private readonly conns = new Set<Conn>();
  private watchdog: NodeJS.Timeout | null = null;
  /** Wall-clock ms of the last message of the current stream; of the last completed resync. */
  lastMessageAt = 0;
  lastResyncAt = 0;
  peer = '';
  /** Heartbeat send time minus arrival (clock offset included): how stale the standby's view is, roughly. */
  lagMs = 0;
  /** Longest run of applying records between two event-loop turns (ms). */
  longestApplyMs = 0;

  constructor(private readonly o: ReceiverOptions) {}

  listen(addr: string): Promise<void> {
    const hp = splitListen(addr)!;
    const server = net.createServer((sock) => this.accept(sock));
    this.server = server;
    this.watchdog = setInterval(() => this.checkSilent(), this.o.heartbeatMs);
    this.watchdog.unref();
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: hp.host, port: hp.port }, () => { server.off('error', reject); resolve(); });
    });
  }

  get address(): net.AddressInfo | null { return this.server?.address() as net.AddressInfo | null; }

  get streaming(): boolean { return this.current !== null; }

  private accept(sock: net.Socket): void {
    const c = new Conn(sock, this.o.key);
    this.conns.add(c);
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 1000);
    sock.on('data', (d) => this.onData(c, d));
    sock.on('error', () => {});
    sock.on('close', () => this.dropped(c));
  }

  private dropped(c: Conn): void {
    this.conns.delete(c);
    if (this.current === c) {
      this.current = null;
      this.o.tables()?.abortResync();
    }
  }

  private onData(c: Conn, d: Buffer): void {
    c.reader.push(d);
    this.pump(c);
  }

  /**
   * Applies the frames received so far, at most APPLY_SLICE_MS per event-loop turn: a resync of a
   * million records must not stall this node's other stages. The socket is paused meanwhile (TCP
   * pushes back on the active, whose backlog bound then applies).
   */
  private pump(c: Conn): void {
    if (c.sock.destroyed) return;
    const t0 = performance.now();
    try {
      for (let f = c.reader.next(); f; f = c.reader.next()) {
        this.onFrame(c, f.type, f.payload);
        const dt = performance.now() - t0;
        if (dt > this.longestApplyMs) this.longestApplyMs = dt;
        if (dt >= APPLY_SLICE_MS && c.reader.buffered > 0) {
          if (!c.paused) { c.paused = true; c.sock.pause(); }
          setImmediate(() => this.pump(c));
          return;
        }
      }
      if (c.paused) { c.paused = false; c.sock.resume(); }
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      if (this.o.counters.reject(e.reason)) this.o.log.warn({ from: c.sock.remoteAddress, reason: e.reason, err: e.message }, 'HA replication message rejected; connection dropped');
      c.sock.destroy();
    }
  }

  private onFrame(c: Conn, type: T, p: Buffer): void {
    c.lastFrameAt = Date.now();
    if (!c.authed && c.nonce.length === 0) {
      if (type !== T.HELLO) throw new ProtocolError('unexpected', `message ${type} before HELLO`);
      if (p.length !== NONCE) throw new ProtocolError('malformed', 'HELLO of the wrong size');
      if (this.o.tables() === null) throw new ProtocolError('not_standby', 'this node is active: replication stream refused (two actives?)');
      c.nonce = nonce();
      c.sock.write(c.writer.frame(T.HELLO_REPLY, Buffer.concat([c.nonce, p])));
      const keys = deriveKeys(this.o.key, p, c.nonce);
      c.reader.key = keys.toStandby;
      c.writer.key = keys.toActive;
      return;
    }
    const tables = this.o.tables();
    if (!tables) throw new ProtocolError('not_standby', 'this node became active: replication stream closed');
    if (!c.authed) {
      // The first session-keyed message passed its mac: this stream is the active's, and current.
      if (type !== T.SNAP_BEGIN) throw new ProtocolError('unexpected', `message ${type} before SNAP_BEGIN`);
      c.authed = true;
      if (this.current && this.current !== c) this.current.sock.destroy();
      this.current = c;
      this.peer = `${c.sock.remoteAddress}:${c.sock.remotePort}`;
    }
    if (this.current !== c) throw new ProtocolError('unexpected', 'a replaced stream kept sending');
    this.lastMessageAt = Date.now();
    switch (type) {
      case T.SNAP_BEGIN:
        tables.beginResync();
        this.o.log.info({ from: this.peer }, 'HA resync from the active started');
        break;
      case T.RECORDS: {
        const before = tables.applied;
        const bad = tables.applyText(p.toString('latin1'), this.o.now(), Date.now());
        const n = tables.applied - before;
        c.applied += n;
        this.o.counters.records_applied += n;
        if (bad !== null) throw new ProtocolError('bad_record', `journal line refused by replay validation (${bad})`);
        // Every frame is acknowledged: frames batch a whole event-loop turn of changes, and the
        // active paces its resync and bounds its backlog on these.
        c.frames++;
        this.ack(c, 0);
        break;
      }
      case T.SNAP_END: {
        const [count] = readF64s(p, 1);
        if (!tables.resyncing) throw new ProtocolError('unexpected', 'SNAP_END without SNAP_BEGIN');
        const removed = tables.endResync();
        this.o.counters.resyncs_received++;
        this.lastResyncAt = Date.now();
        this.o.log.info({ from: this.peer, records: count, removedStale: removed }, 'HA resync from the active complete');
        this.ack(c, 0);
        break;
      }
      case T.HEARTBEAT: {
        const [sentAt] = readF64s(p, 2);
        this.lagMs = Math.max(0, Date.now() - sentAt);
        this.ack(c, sentAt);
        break;
      }
      default:
        throw new ProtocolError('unexpected', `message ${type} from an active`);
    }
  }

  private ack(c: Conn, echo: number): void {
    c.sock.write(c.writer.frame(T.ACK, f64s(c.applied, echo)));
  }

  /** A stream silent for 4 heartbeats is dead (a killed active whose links went down). */
  private checkSilent(): void {
    const limit = 4 * this.o.heartbeatMs + 1000;
    for (const c of this.conns) if (Date.now() - c.lastFrameAt > limit) c.sock.destroy();
  }

  /** Ends every stream (this node became active). */
  dropAll(): void {
    for (const c of this.conns) c.sock.destroy();
    this.current = null;
  }

  close(): Promise<void> {
    if (this.watchdog) clearInterval(this.watchdog);
    this.dropAll();
    return new Promise((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
