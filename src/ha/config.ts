/**
 * The `ha:` section: NAT state replication between a gateway pair (docs/ha.md). Validated once at
 * load; the key file is read at start (its contents never appear in errors or logs).
 */
import { z } from 'zod';
import { splitListen } from '../config/core';

const hostPort = z.string().refine((s) => splitListen(s) !== null, 'host:port with a port 1..65535, e.g. 192.168.10.2:7790');

export const haConfigSchema = z.object({
  /**
   * Role at start. `auto`: start as standby and let keepalived's notify script call
   * `sluice ha promote|demote` (a restarted gateway never takes traffic by itself). `active` /
   * `standby`: fixed start roles for a manual pair; the commands still switch them.
   */
  role: z.enum(['auto', 'active', 'standby']).default('auto'),
  /** Where this node accepts a replication stream while it is standby (host:port). */
  listen: hostPort.describe('address a standby accepts the replication stream on, e.g. 192.168.10.2:7790'),
  /** Standbys the active streams to (host:port each); the other gateway's `listen`. */
  peers: z.array(hostPort).min(1).max(8).describe('the other gateways\' listen addresses'),
  /** File holding the shared key (at least 32 bytes; trailing newline ignored); readable by root only. */
  key_file: z.string().min(1).describe('shared secret for HMAC-SHA256, at least 32 bytes'),
  /**
   * Records queued for one standby (not yet written to its socket). A standby that falls further
   * behind is dropped (counted as backlog_overflow) and gets a full resync when it reconnects.
   */
  backlog: z.number().int().min(64).max(1 << 22).default(65536),
  /** Heartbeat period (ms): lag is measured on it and a silent peer is dropped after 4 of them. */
  heartbeat_ms: z.number().int().min(50).max(60_000).default(500),
  /** Delay before reconnecting to a standby that could not be reached (ms). */
  reconnect_ms: z.number().int().min(50).max(60_000).default(500),
}).strict();

export type HaConfig = z.infer<typeof haConfigSchema>;
