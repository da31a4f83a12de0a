/**
 * Active side: one replication stream to one standby. Connects, authenticates (HELLO / HELLO_REPLY),
 * sends a full resync (every journaled record, walked in slices of at most SLICE_MS between
 * event-loop turns) and then every change as it happens, batched per event-loop turn.
 *
 * Bounded: records sent but not yet acknowledged may not exceed `backlog`; past it the stream is
 * dropped (backlog_overflow) and the next connection starts with a full resync. The snapshot walk
 * itself waits for acknowledgements at half the backlog, so only live changes can overflow it.
 */
import * as net from 'node:net';
import { splitListen } from '../config/core';
import type { NatState } from '../nat/state';
import { SaKind } from '../nat/table';
import { DIR_ACTIVE, DIR_STANDBY, FrameReader, FrameWriter, NONCE, ProtocolError, T, deriveKeys, f64s, nonce, readF64s } from './protocol';
import { putLine } from './records';
import type { HaCounters } from './counters';

const SLICE_MS = 1;
/**
 * Records per RECORDS frame at most (lines are < 100 bytes: frames stay far below MAX_FRAME); the
 * standby applies at least one frame per event-loop turn, so this also bounds its pauses.
 */
const BATCH = 512;

export interface SenderOptions {
  key: Buffer;
  backlog: number;
  heartbeatMs: number;
  reconnectMs: number;
  counters: HaCounters;
  log: { info(o: object, m: string): void; warn(o: object, m: string): void };
  /** The NAT state to snapshot (looked up per resync: a reload may replace the stage). */
  state: () => NatState | null;
}

type Phase = 'idle' | 'connecting' | 'hello' | 'snapshot' | 'live';

export class Sender {
  private sock: net.Socket | null = null;
  private reader: FrameReader | null = null;
  private writer: FrameWriter | null = null;
  private myNonce: Buffer = Buffer.alloc(0);
  phase: Phase = 'idle';
  private pending: string[] = [];
  private flushQueued = false;
  private timer: NodeJS.Timeout | null = null;
  private hbTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Records written to this stream / acknowledged by the standby (this connection). */
  sent = 0;
  acked = 0;
  lastAckAt = 0;
  /** Round trip of the last heartbeat (ms): the replication lag a change sees at most, roughly. */
  rttMs = 0;
  connectedAt = 0;
  snapshotRecords = 0;
  lastError = '';
  /** Longest resync slice (walk + frame encoding) between two event-loop turns (ms). */
  longestSliceMs = 0;
  private walkWaiter: (() => void) | null = null;

  constructor(readonly peer: string, private readonly o: SenderOptions) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.close('stopped');
  }

  /** A change (journal line) to stream; ignored until the session is up (the resync covers it). */
  record(line: string): void {
    if (this.phase !== 'snapshot' && this.phase !== 'live') return;
    this.pending.push(line);
    this.sent++;
    if (this.sent - this.acked > this.o.backlog) {
      this.o.counters.backlog_overflow++;
      this.o.log.warn({ peer: this.peer, unacked: this.sent - this.acked, backlog: this.o.backlog }, 'HA standby fell behind the backlog limit: stream dropped, it will get a full resync');
      this.close('backlog overflow');
      return;
    }
    if (!this.flushQueued) { this.flushQueued = true; setImmediate(() => this.flush()); }
  }

  private flush(): void {
    this.flushQueued = false;
    const sock = this.sock, w = this.writer;
    if (!sock || !w || this.pending.length === 0) { this.pending = []; return; }
    for (let i = 0; i < this.pending.length; i += BATCH) {
      sock.write(w.frame(T.RECORDS, Buffer.from(this.pending.slice(i, i + BATCH).join(''), 'latin1')));
      this.o.counters.records_sent += Math.min(BATCH, this.pending.length - i);
    }
    this.pending = [];
  }

  private connect(): void {
    if (this.stopped) return;
    const hp = splitListen(this.peer)!;
    this.phase = 'connecting';
    const sock = net.connect({ host: hp.host, port: hp.port });
    this.sock = sock;
    sock.setNoDelay(true);
    sock.setKeepAlive(true, 1000);
    sock.on('connect', () => {
      this.myNonce = nonce();
      this.reader = new FrameReader(this.o.key, DIR_STANDBY);
      this.writer = new FrameWriter(this.o.key, DIR_ACTIVE);
      this.phase = 'hello';
      sock.write(this.writer.frame(T.HELLO, this.myNonce));
    });
    sock.on('data', (d) => this.onData(d));
    sock.on('error', (e) => { this.lastError = e.message; });
    sock.on('close', () => {
      if (this.sock !== sock) return;
      this.close('connection closed');
    });
  }

  private onData(d: Buffer): void {
    const r = this.reader;
    if (!r) return;
    r.push(d);
    try {
      for (let f = r.next(); f; f = r.next()) this.onFrame(f.type, f.payload);
    } catch (e) {
      if (e instanceof ProtocolError) {
        if (this.o.counters.reject(e.reason)) this.o.log.warn({ peer: this.peer, reason: e.reason, err: e.message }, 'HA replication message rejected; connection dropped');
        this.close(e.message);
      } else throw e;
    }
  }

  private onFrame(type: T, p: Buffer): void {
    if (this.phase === 'hello') {
      if (type !== T.HELLO_REPLY) throw new ProtocolError('unexpected', `message ${type} before the handshake`);
      if (p.length !== 2 * NONCE) throw new ProtocolError('malformed', 'HELLO_REPLY of the wrong size');
      if (!p.subarray(NONCE).equals(this.myNonce)) throw new ProtocolError('bad_nonce', 'HELLO_REPLY echoes another nonce');
      const keys = deriveKeys(this.o.key, this.myNonce, p.subarray(0, NONCE));
      this.reader!.key = keys.toActive;
      this.writer!.key = keys.toStandby;
      this.startSession();
      return;
    }
    if (type !== T.ACK) throw new ProtocolError('unexpected', `message ${type} from a standby (only acknowledgements)`);
    const [applied, echo] = readF64s(p, 2);
    if (applied > this.sent) throw new ProtocolError('malformed', `acknowledges ${applied} records of ${this.sent} sent`);
    this.acked = applied;
    this.lastAckAt = Date.now();
    if (echo > 0) this.rttMs = Date.now() - echo;
    if (this.walkWaiter && this.sent - this.acked <= this.o.backlog / 2) { const w = this.walkWaiter; this.walkWaiter = null; w(); }
  }

  private startSession(): void {
    this.phase = 'snapshot';
    this.sent = 0; this.acked = 0;
    this.connectedAt = Date.now();
    this.lastAckAt = Date.now();
    this.o.counters.resyncs_sent++;
    this.o.log.info({ peer: this.peer }, 'HA standby connected: full resync');
    this.hbTimer = setInterval(() => this.heartbeat(), this.o.heartbeatMs);
    this.hbTimer.unref();
    this.sock!.write(this.writer!.frame(T.SNAP_BEGIN));
    const sock = this.sock;
    this.walk().catch((e: Error) => { if (this.sock === sock) this.close(`resync: ${e.message}`); });
  }

  /** Sends every journaled record, a slice per event-loop turn, pacing itself on acknowledgements. */
  private async walk(): Promise<void> {
    const sock = this.sock;
    let id = 0;
    let n = 0;
    for (;;) {
      const s = this.o.state();
      if (this.sock !== sock) return;
      if (!s) break;
      const sas = s.sas;
      if (id >= sas.top) break;
      const t0 = performance.now();
      while (id < sas.top && this.pending.length < BATCH) {
        const k = sas.kind[id];
        if (k === SaKind.ESP_IN || k === SaKind.IKE) { this.pending.push(putLine(s.journalEntry(id))); this.sent++; n++; }
        id++;
        if ((id & 127) === 0 && performance.now() - t0 >= SLICE_MS) break;
      }
      this.flush();
      const dt = performance.now() - t0;
      if (dt > this.longestSliceMs) this.longestSliceMs = dt;
      if (this.sent - this.acked > this.o.backlog / 2) await new Promise<void>((r) => { this.walkWaiter = r; });
      else await new Promise<void>((r) => setImmediate(r));
    }
    this.flush();
    this.snapshotRecords = n;
    this.sock!.write(this.writer!.frame(T.SNAP_END, f64s(n)));
    this.phase = 'live';
  }

  private heartbeat(): void {
    if (!this.sock || !this.writer) return;
    if (Date.now() - this.lastAckAt > 4 * this.o.heartbeatMs + 1000) {
      this.o.log.warn({ peer: this.peer, silentMs: Date.now() - this.lastAckAt }, 'HA standby stopped acknowledging: stream dropped');
      this.close('no acknowledgement');
      return;
    }
    this.flush();
    this.sock.write(this.writer.frame(T.HEARTBEAT, f64s(Date.now(), this.sent)));
  }

  private close(why: string): void {
    const sock = this.sock;
    const was = this.phase;
    this.sock = null;
    this.reader = null;
    this.writer = null;
    this.pending = [];
    this.phase = 'idle';
    if (this.hbTimer) clearInterval(this.hbTimer);
    this.hbTimer = null;
    if (this.walkWaiter) { const w = this.walkWaiter; this.walkWaiter = null; w(); }
    if (sock) sock.destroy();
    if (was === 'snapshot' || was === 'live') this.o.log.info({ peer: this.peer, why }, 'HA stream to standby ended');
    if (!this.stopped && !this.timer) {
      this.timer = setTimeout(() => { this.timer = null; this.connect(); }, this.o.reconnectMs);
      this.timer.unref();
    }
  }

  stats(): Record<string, unknown> {
    return {
      peer: this.peer, phase: this.phase, sent: this.sent, acked: this.acked, unacked: this.sent - this.acked,
      rtt_ms: this.rttMs, snapshot_records: this.snapshotRecords, longest_slice_ms: Math.round(this.longestSliceMs * 100) / 100, connected_at: this.connectedAt || undefined,
      last_error: this.lastError || undefined,
    };
  }
}
