/**
 * `sluice trace` (one line per packet: what each stage saw and decided) and `sluice tap` (the same
 * packets into a pcapng file, each with its trace line as a packet comment), both over the control
 * socket of a running sluice.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { controlStream } from '../control/client';
import { formatTraceLine, type TraceLineJson } from '../obs/trace-format';
import { pcapngHeader, pcapngPacket } from '../obs/pcapng';
import { parse, socketOptions, socketPath, UsageError } from './args';

const FILTER_HELP = `Filter (--filter): sluice's selector fields as field=value words, all must match; a comma
list means any; !field=value negates one field:
  proto=esp                      in=eth1 kind=ike ike_exchange=ike_auth
  dst=203.0.113.0/24 dport=500,4500           !src=10.0.0.0/8 hook=prerouting
Fields: hook in out src dst proto sport dport icmp_type dhcp_type ike_exchange esp_spi kind mark
length queue ip_version (docs/config.md, "Selectors"). Named sets (@name) are not available.`;

const TRACE_HELP = `Usage: sluice trace [-c FILE | -s SOCKET] [--filter EXPR] [--count N] [--json]

Live, for each packet matching the filter: queue, hook, in>out interface, the packet's summary
(the layers \`sluice decode\` prints), then each stage that looked at it with what its tables say
(steer/policy rule, NAT mapping and learning state, DHCP scope) and its decision, then the verdict,
mark and rewrite. Ends after --count packets, or on Ctrl-C; if sluice stops meanwhile (SIGTERM, a
worker thread that died) it ends with the reason and exit code 1.

  --filter EXPR  which packets (default: all)
  --count N      stop after N packets
  --json         one JSON object per packet
  --layers       with --json: every layer of the packet as \`sluice decode\` prints it ("layers")
  --queue-max N  packets the engine keeps for this client while it is behind (default 1024);
                 beyond that packets are not traced and counted as dropped (the engine never waits)

${FILTER_HELP}
`;

const TAP_HELP = `Usage: sluice tap -w FILE [-c FILE | -s SOCKET] [--filter EXPR] [--count N]

Writes the packets a running sluice sees (as they arrived, raw IP) to a pcapng file, each with its
\`sluice trace\` line (stages, verdict, mark, rewrite) as a packet comment: Wireshark shows it under
"Packet comments", \`tshark -r FILE -T fields -e frame.comment\` prints it. -w - writes to stdout.

${FILTER_HELP}
`;

interface TraceChunk { packets: TraceLineJson[]; dropped: number; done?: boolean }

/** Streams trace chunks until the server ends (count reached) or Ctrl-C; returns packets and drops. */
async function stream(values: { config?: string; socket?: string; filter?: string; count?: string; 'queue-max'?: string; layers?: boolean }, bytes: boolean,
  onPacket: (p: TraceLineJson) => void): Promise<{ packets: number; dropped: number; interrupted: boolean }> {
  const args: Record<string, unknown> = { filter: values.filter ?? '', bytes, layers: values.layers === true };
  if (values.count !== undefined) {
    const n = Number(values.count);
    if (!Number.isInteger(n) || n < 1) throw new UsageError('--count needs a positive number');
    args.count = n;
  }
  if (values['queue-max'] !== undefined) args.max = Number(values['queue-max']);
  const path = await socketPath(values);
  let packets = 0, dropped = 0;
  let interrupted = false;
  let onInt = (): void => {};
  const stopped = new Promise<void>((r) => { onInt = () => { interrupted = true; r(); }; });
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onInt);
  try {
    await Promise.race([stopped, controlStream(path, { cmd: 'trace', args }, (c) => {
      const chunk = c as TraceChunk;
      dropped = chunk.dropped;
      for (const p of chunk.packets) { packets++; onPacket(p); }
    }, 15000)]);
  } finally {
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onInt);
  }
  return { packets, dropped, interrupted };
}

function summary(r: { packets: number; dropped: number }): string {
  return `sluice: ${r.packets} packets traced${r.dropped ? `, ${r.dropped} not traced because this client fell behind (raise --queue-max or narrow --filter)` : ''}\n`;
}

const streamOptions = {
  ...socketOptions, filter: { type: 'string', short: 'f' }, count: { type: 'string', short: 'n' }, 'queue-max': { type: 'string' },
} as const;

export async function traceCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { ...streamOptions, json: { type: 'boolean' }, layers: { type: 'boolean' } }, TRACE_HELP);
  if (!a) return 0;
  if (a.values.layers && !a.values.json) throw new UsageError('--layers goes with --json');
  const r = await stream(a.values, false, (p) => process.stdout.write(`${a.values.json ? JSON.stringify(p) : formatTraceLine(p)}\n`));
  process.stderr.write(summary(r));
  if (r.interrupted) process.exit(0); // the stream's socket would keep the process alive
  return 0;
}

export async function tapCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { ...streamOptions, write: { type: 'string', short: 'w' } }, TAP_HELP);
  if (!a) return 0;
  const file = a.values.write;
  if (!file) throw new UsageError(`tap needs -w FILE\n\n${TAP_HELP}`);
  const fd = file === '-' ? 1 : openSync(file, 'w', 0o600);
  try {
    writeSync(fd, pcapngHeader());
    const r = await stream(a.values, true, (p) => {
      const data = Buffer.from(p.bytes ?? '', 'base64');
      writeSync(fd, pcapngPacket(data, Date.parse(p.time), p.length, formatTraceLine(p)));
    });
    process.stderr.write(summary(r).replace('traced', `written to ${file}`));
    if (r.interrupted) { if (fd !== 1) closeSync(fd); process.exit(0); }
  } finally {
    if (fd !== 1) closeSync(fd);
  }
  return 0;
}
