/** `sluice run -c FILE`: run until SIGINT/SIGTERM; SIGHUP reloads. */
import { loadConfig } from '../config/load';
import { configFile, parse } from './args';
import { Runtime } from './runtime';

const HELP = `Usage: sluice run [-c FILE]

Runs the engine: opens the configured NFQUEUE queues, runs the stages over every packet, answers
on the control socket (sluice stats / sa / reload). Needs root (CAP_NET_ADMIN).
The kernel only sends packets that iptables rules queue: see \`sluice rules -c FILE\`.
Signals: SIGHUP reloads the config; SIGINT/SIGTERM stop cleanly (held packets get their default verdict).
Without -c the config is $SLUICE_CONFIG, else /etc/sluice/sluice.yaml.
`;

export async function runCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { config: { type: 'string', short: 'c' } }, HELP);
  if (!a) return 0;
  a.values.config = configFile(a.values.config);
  // Read with the 5 s timeout (a hung network filesystem is an error, not a hang).
  const cfg = await loadConfig(a.values.config);
  const rt = new Runtime(cfg, a.values.config);
  await rt.start();
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => { rt.stop(signal).then(resolve, resolve); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
