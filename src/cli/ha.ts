/** `sluice ha promote|demote|status`: switch or show the HA role of a running sluice (docs/ha.md). */
import { controlRequest } from '../control/client';
import { parse, socketOptions, socketPath, UsageError } from './args';
import { formatHa } from './stats';

const HELP = `Usage: sluice ha promote [-c FILE | -s SOCKET] [--json]
       sluice ha demote [-c FILE | -s SOCKET] [--json]
       sluice ha status [-c FILE | -s SOCKET] [--json]

  promote   become the active gateway: the replicated NAT records are rebuilt as after a journal
            replay and the NAT translates traffic; changes stream to the configured peers
  demote    become a standby: the NAT drops the packets it owns (counted as nat.ha_standby),
            held packets are dropped, and the tables follow the active's replication stream
  status    role, replication streams, lag, records sent/applied, resyncs, rejected messages

Both switches are idempotent (they report changed=false when the role was already that), so
keepalived's notify script can call them on every transition (examples/ha/keepalived-notify.sh).
`;

export async function haCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { ...socketOptions, json: { type: 'boolean' } }, HELP, true);
  if (!a) return 0;
  const op = a.positionals[0];
  if (op !== 'promote' && op !== 'demote' && op !== 'status') throw new UsageError(`ha needs promote, demote or status\n\n${HELP}`);
  if (a.positionals.length > 1) throw new UsageError(`unexpected argument "${a.positionals[1]}"\n\n${HELP}`);
  const r = await controlRequest(await socketPath(a.values), { cmd: 'ha', name: op }, 30000) as Record<string, unknown>;
  if (a.values.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  else {
    if (op !== 'status') process.stdout.write(`${r.changed ? `now ${String(r.role)}` : `already ${String(r.role)}`}\n`);
    process.stdout.write(`${formatHa(r).join('\n')}\n`);
  }
  return 0;
}
