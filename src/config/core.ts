/**
 * The engine's own config sections (queues, held packets, control socket, logs, metrics). Each
 * stage area owns its section's schema (src/<area>/config.ts); src/config/schema.ts composes them.
 */
import { z } from 'zod';

const verdict = z.enum(['accept', 'drop']);
const chain = z.enum(['prerouting', 'input', 'forward', 'output', 'postrouting']);
const portOrRange = z.union([z.number().int().min(0).max(65535), z.string().regex(/^\d{1,5}(:\d{1,5})?$/, 'a port or a range like 1000:2000')]);

const IPV4 = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}';
const prefix4 = z.string().regex(new RegExp(`^${IPV4}(/(3[0-2]|[12]?\\d))?$`), 'an IPv4 address or prefix like 192.168.1.0/24');
/** A Linux interface name (IFNAMSIZ 16 with the NUL), with iptables' trailing `+` wildcard; never an option. */
const ifname = z.string().regex(/^[A-Za-z0-9_.:@][A-Za-z0-9_.:@-]{0,14}\+?$/, 'an interface name like eth0 or ppp+ (at most 15 characters: letters, digits, _ . : @ -)');

/** One iptables rule that sends traffic to this queue (for `sluice rules`). */
export const captureSchema = z.object({
  chain,
  table: z.enum(['mangle', 'raw', 'filter']).default('mangle'),
  in: ifname.optional().describe('input interface (iptables -i, `+` wildcard allowed)'),
  out: ifname.optional().describe('output interface (iptables -o)'),
  proto: z.union([z.enum(['tcp', 'udp', 'icmp', 'esp', 'ah', 'all']), z.number().int().min(0).max(255)]).optional(),
  src: prefix4.optional().describe('source prefix, e.g. 192.168.1.0/24'),
  dst: prefix4.optional(),
  sport: portOrRange.optional(),
  dport: portOrRange.optional(),
}).strict();

export const queueSchema = z.object({
  num: z.number().int().min(0).max(65535).describe('NFQUEUE number (iptables --queue-num)'),
  copy_range: z.number().int().min(64).max(65535).default(65535).describe('bytes of each packet copied to sluice'),
  max_len: z.number().int().min(1).max(1 << 20).default(4096).describe('kernel queue length before drops (or bypass with fail_open)'),
  fail_open: z.boolean().default(true).describe('kernel accepts packets when the queue is full; `sluice rules` adds --queue-bypass'),
  gso: z.boolean().default(false).describe('receive GSO super-packets unsegmented'),
  rcvbuf: z.number().int().min(65536).max(1 << 30).default(8 << 20).describe('netlink receive buffer bytes (SO_RCVBUFFORCE)'),
  batch: z.number().int().min(1).max(1024).default(64).describe('packets per batch handed to the engine'),
  default_verdict: verdict.default('accept').describe('verdict for packets no stage decided'),
  on_invalid: verdict.default('drop').describe('verdict for packets the packet layer cannot read (counted)'),
  capture: z.array(captureSchema).default([]).describe('iptables rules that send traffic to this queue'),
}).strict();

/** A TUN device as a packet source: the kernel routes packets into it, sluice writes accepted ones back. */
export const tunSchema = z.object({
  name: z.string().min(1).max(15).describe('device name; created when missing'),
  batch: z.number().int().min(1).max(1024).default(64),
  default_verdict: verdict.default('accept'),
  on_invalid: verdict.default('drop'),
  source_id: z.number().int().min(65536).max(1 << 30).optional()
    .describe('number stages see as the packet\'s queue (default 65536 + position in this list)'),
}).strict();

/** `host:port` or `[v6]:port`, port 1..65535 (the metrics endpoint). */
export function splitListen(s: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2]!, port };
}
const validListen = (s: string): boolean => splitListen(s) !== null;

export const coreSchemaShape = {
  queues: z.array(queueSchema).prefault([{ num: 0 }])
    .superRefine((qs, ctx) => {
      const seen = new Set<number>();
      qs.forEach((q, i) => {
        if (seen.has(q.num)) ctx.addIssue({ code: 'custom', path: [i, 'num'], message: `queue ${q.num} appears twice` });
        seen.add(q.num);
      });
    }),
  tun: z.array(tunSchema).default([]).describe('TUN devices read as packet sources'),
  workers: z.number().int().min(1).max(64).default(1)
    .describe('threads deciding packets. 1: the main thread decides, as always. N > 1: each queue `num: q` becomes queues q..q+N-1, one per worker thread, and `sluice rules` sends to them with --queue-balance q:q+N-1; NAT tables are shared (docs/nat.md)'),
  queue_cpu_fanout: z.boolean().default(false)
    .describe('with workers > 1: the kernel picks the queue by the CPU that handles the packet (--queue-cpu-fanout) instead of by a hash of its addresses'),
  held: z.object({
    max: z.number().int().min(0).max(1 << 20).default(4096).describe('packets held at once (all stages)'),
    timeout_ms: z.number().int().min(1).max(600000).default(5000).describe('default hold time before the default verdict'),
    default_verdict: verdict.default('accept'),
  }).strict().prefault({}),
  state_dir: z.string().min(1).refine((p) => p.startsWith('/'), 'an absolute path').default('/var/lib/sluice')
    .describe('directory for state that must survive restarts and reboots (the NAT journal); created 0700. Not /run: a tmpfs, lost at reboot'),
  control: z.object({
    socket: z.string().min(1).default('/run/sluice/sluice.sock')
      // sockaddr_un holds 108 bytes with the NUL: a longer path would be bound truncated.
      .refine((p) => Buffer.byteLength(p) <= 107, 'at most 107 bytes (a Unix socket path is cut beyond that)')
      .describe('Unix control socket (mode 0600; its directory must be owned by sluice\'s user and not writable by others)'),
  }).strict().prefault({}),
  log: z.object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    format: z.enum(['json', 'text']).default('json').describe('json: one JSON object per line; text: time, level, message, key=value'),
  }).strict().prefault({}),
  metrics: z.object({
    listen: z.string().refine(validListen, 'host:port with a port 1..65535, e.g. 127.0.0.1:9477 or [::1]:9477')
      .nullable().default(null).describe('Prometheus text endpoint, e.g. 127.0.0.1:9477 or [::1]:9477'),
  }).strict().prefault({}),
};

export type TunConfig = z.infer<typeof tunSchema>;
export type QueueConfig = z.infer<typeof queueSchema>;
export type CaptureConfig = z.infer<typeof captureSchema>;
