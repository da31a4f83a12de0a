/** `sluice sa`: the NAT stage's mappings, and pins, through the control socket. */
import { controlRequest, controlStream } from '../control/client';
import { formatSaEvent, type SaEvent } from '../nat/events';
import { formatLearning, formatSaChunk, formatSaHeader, type LearningEntry, type SaListEntry } from '../nat';
import { parse, socketOptions, socketPath, UsageError } from './args';

const HELP = `Usage: sluice sa [-c FILE | -s SOCKET] [--json] [--host H] [--server S] [--spi X]
                                                    list ESP/IKE NAT mappings (filtered)
  sluice sa --events [--json] [--host H] [--server S] [--spi X]
                                                    stream SA events as they happen, like conntrack -E:
                                                    NEW, LEARNED, PAIRED, EXPIRED, DELETED, REPLACED
  sluice sa delete [--host H] [--server S] [--spi X]
                                                    remove the matching records (at least one filter)
  sluice sa flush                                   remove every record
  sluice sa pin --host H --server S --spi X         route inbound ESP SPI X from server S to host H
  sluice sa unpin --server S --spi X                remove a pin
  sluice sa learning [--json]                       per public address and server: the learning turn
                                                    running, packets held, hosts still owed an SA,
                                                    and inbound SPIs that are still ambiguous

The list shows, per LAN host: its public address, the server, IKE SPIs, ESP SPIs in and out,
packets, bytes, age and idle time (like swanctl --list-sas), and how each inbound SPI was learned
(window, reply, elimination, outbound; docs/nat.md). --spi X is hex: 8 digits match ESP SPIs,
16 an IKE initiator SPI. A deleted record's next packet is treated as new (outbound) or unknown
(inbound, learning applies), as after an idle timeout.
`;

export async function saCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { ...socketOptions, json: { type: 'boolean' }, host: { type: 'string' }, server: { type: 'string' },
    spi: { type: 'string' }, public: { type: 'string' }, events: { type: 'boolean' } }, HELP, true);
  if (!a) return 0;
  const path = await socketPath(a.values);
  const sub = a.positionals[0] ?? 'list';
  const { host, server, spi } = a.values;
  if (sub === 'pin' || sub === 'unpin') {
    if (!server || !spi || (sub === 'pin' && !host)) throw new UsageError(`sa ${sub} needs ${sub === 'pin' ? '--host, ' : ''}--server and --spi\n\n${HELP}`);
    const args: Record<string, unknown> = { host, server, spi, public: a.values.public };
    const r = await controlRequest(path, { cmd: 'stage', stage: 'nat', name: `sa-${sub}`, args });
    process.stdout.write(`${typeof r === 'string' ? r : JSON.stringify(r)}\n`);
    return 0;
  }
  if (sub === 'learning') {
    const r = await controlRequest(path, { cmd: 'stage', stage: 'nat', name: 'sa-learning', args: {} });
    process.stdout.write(a.values.json ? `${JSON.stringify(r, null, 2)}\n` : formatLearning(r as LearningEntry[]));
    return 0;
  }
  if (sub === 'delete' || sub === 'flush') {
    if (sub === 'delete' && !host && !server && !spi) throw new UsageError(`sa delete needs --host, --server and/or --spi (sa flush removes everything)\n\n${HELP}`);
    const r = await controlRequest(path, { cmd: 'stage', stage: 'nat', name: `sa-${sub}`, args: { host, server, spi } }) as { deleted: number };
    process.stdout.write(a.values.json ? `${JSON.stringify(r)}\n` : `${r.deleted} SA record${r.deleted === 1 ? '' : 's'} deleted\n`);
    return 0;
  }
  if (a.values.events) return saEventsCommand(path, { host, server, spi }, !!a.values.json);
  if (sub !== 'list') throw new UsageError(`unknown sa subcommand "${sub}"\n\n${HELP}`);
  // Streamed: 1M SAs arrive in chunks, printed as they come (the engine lists them in slices).
  let n = 0;
  const out = (t: string): void => { process.stdout.write(t); };
  if (a.values.json) out('[');
  else out(formatSaHeader());
  await controlStream(path, { cmd: 'stage', stage: 'nat', name: 'sa-list', args: { stream: true, host, server, spi } }, (chunk) => {
    const entries = chunk as SaListEntry[];
    if (a.values.json) {
      for (const e of entries) out(`${n++ === 0 ? '\n' : ',\n'}${JSON.stringify(e)}`);
    } else {
      n += entries.length;
      out(formatSaChunk(entries));
    }
  });
  if (a.values.json) out(n === 0 ? ']\n' : '\n]\n');
  else if (n === 0) out('no mappings\n');
  return 0;
}

/** Streams SA events until Ctrl-C; a gap the engine had to drop (this client too slow) is said so. */
async function saEventsCommand(path: string, args: Record<string, unknown>, json: boolean): Promise<number> {
  let dropped = 0;
  const stop = new Promise<void>((r) => { process.once('SIGINT', () => r()); process.once('SIGTERM', () => r()); });
  await Promise.race([stop, controlStream(path, { cmd: 'stage', stage: 'nat', name: 'sa-events', args }, (c) => {
    const chunk = c as { events: SaEvent[]; dropped: number };
    for (const e of chunk.events) process.stdout.write(`${json ? JSON.stringify(e) : formatSaEvent(e)}\n`);
    if (chunk.dropped > dropped) {
      process.stderr.write(`sluice: ${chunk.dropped - dropped} events not shown (this client fell behind)\n`);
      dropped = chunk.dropped;
    }
  }, 15000)]);
  process.exit(0); // the stream's socket would keep the process alive
}
