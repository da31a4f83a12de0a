/** `sluice sa`: the NAT stage's mappings, and pins, through the control socket. */
import { controlRequest, controlStream } from '../control/client';
import { formatLearning, formatSaChunk, formatSaHeader, type LearningEntry, type SaListEntry } from '../nat';
import { parse, socketOptions, socketPath, UsageError } from './args';

const HELP = `Usage: sluice sa [-c FILE | -s SOCKET] [--json]    list ESP/IKE NAT mappings
  sluice sa pin --host H --server S --spi X         route inbound ESP SPI X from server S to host H
  sluice sa unpin --server S --spi X                remove a pin
  sluice sa learning [--json]                       per public address and server: the learning turn
                                                    running, packets held, hosts still owed an SA,
                                                    and inbound SPIs that are still ambiguous

The list shows, per LAN host: its public address, the server, IKE SPIs, ESP SPIs in and out,
packets, bytes, age and idle time (like swanctl --list-sas), and how each inbound SPI was learned
(window, reply, elimination, outbound; docs/nat.md). SPIs are hex (0x...) or decimal.
`;

export async function saCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { ...socketOptions, json: { type: 'boolean' }, host: { type: 'string' }, server: { type: 'string' },
    spi: { type: 'string' }, public: { type: 'string' } }, HELP, true);
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
  if (sub !== 'list') throw new UsageError(`unknown sa subcommand "${sub}"\n\n${HELP}`);
  // Streamed: 1M SAs arrive in chunks, printed as they come (the engine lists them in slices).
  let n = 0;
  const out = (t: string): void => { process.stdout.write(t); };
  if (a.values.json) out('[');
  else out(formatSaHeader());
  await controlStream(path, { cmd: 'stage', stage: 'nat', name: 'sa-list', args: { stream: true, host, server } }, (chunk) => {
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
