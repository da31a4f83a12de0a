#!/usr/bin/env node
/**
 * `sluice` — thin over the rest: parse the command line, call one command module, map errors to
 * exit codes (0 ok, 1 runtime failure, 2 bad usage or bad config).
 */
import { ConfigError } from '../config/load';
import { UsageError } from './args';

const USAGE = `sluice — userspace packet engine for Linux gateways (NFQUEUE / TUN)

Usage: sluice <command> [options]

Commands:
  run [-c FILE]        run the engine with a config (needs root / CAP_NET_ADMIN)
  check [-c FILE]      validate a config: schema errors with file:line, shadowed rules
  rules [-c FILE]      print the iptables-restore input, ip rule / ip route lines it needs
                       (--apply / --remove to do it, idempotently; --cleanup prints the removal)
  stats                counters of a running sluice per queue, stage and drop reason (--json)
  sa                   NAT mappings of a running sluice, like swanctl --list-sas (--json);
                       sa pin --host H --server S --spi X  /  sa unpin ...
  ha promote|demote    switch the HA role (keepalived's notify script calls it); ha status
                       shows role, replication lag, resyncs and rejected messages (docs/ha.md)
  reload               re-read the config of a running sluice (also: SIGHUP); an invalid one is refused
  trace                live, per packet: each stage's rule/mapping/scope and decision, the verdict
                       (--filter EXPR, --count N, --json)
  tap -w FILE.pcapng   packets of a running sluice into pcapng, verdicts as packet comments
  replay -c FILE CAP   run a config's pipeline over a capture (no kernel) and print trace lines
  decode FILE|--hex H  print the layers of each packet in a pcap/pcapng file as JSON lines
  demo                 run the namespace-lab demo (what \`npm start\` runs; needs root)

Options for commands that talk to a running sluice:
  -c, --config FILE    read the control socket path from this config (default: the default
                       config's, when it exists)
  -s, --socket PATH    control socket (default /run/sluice/sluice.sock)

Files:
  /etc/sluice/sluice.yaml   config of run, check and rules without -c (or $SLUICE_CONFIG)
  /var/lib/sluice           state (state_dir: the NAT journal)
  /run/sluice/sluice.sock   control socket (control.socket)

Run \`sluice <command> --help\` for a command's own options; \`sluice --version\` checks the addon.
Docs: docs/config.md (every config key), docs/operator.md (rules, counters), docs/ha.md (gateway pairs).
`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./run')).runCommand,
  check: async () => (await import('./check')).checkCommand,
  rules: async () => (await import('./rules')).rulesCommand,
  stats: async () => (await import('./stats')).statsCommand,
  sa: async () => (await import('./sa')).saCommand,
  reload: async () => (await import('./stats')).reloadCommand,
  ha: async () => (await import('./ha')).haCommand,
  decode: async () => (await import('./decode')).decodeCommand,
  trace: async () => (await import('./trace')).traceCommand,
  tap: async () => (await import('./trace')).tapCommand,
  replay: async () => (await import('./replay')).replayCommand,
  demo: async () => (await import('./demo')).demoCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') return (await import('./version')).versionCommand();
  const load = commands[name];
  if (!load) {
    process.stderr.write(`sluice: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  return (await load())(rest);
}

// `sluice decode big.pcap | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.problems.map((p) => `sluice: ${p}`).join('\n')}\n`);
      // At once: a config read that timed out is still pending in the thread pool and would keep
      // the process waiting for it.
      process.exit(2);
    } else if (err instanceof UsageError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`sluice: ${(err as Error)?.message ?? String(err)}\n`);
      if (process.env.SLUICE_DEBUG) process.stderr.write(`${(err as Error)?.stack}\n`);
      process.exitCode = 1;
    }
  },
);
