/** `sluice check -c FILE`: validate a config without touching the kernel. */
import { configFromText, configLocator, readConfigText } from '../config/load';
import { configFile, parse } from './args';
import { buildStages, checkWarnings } from './pipeline';

const HELP = `Usage: sluice check [-c FILE] [--quiet] [--strict]

Validates a config: YAML syntax, every field against the schema (errors name file:line and the
field path, exit 2), then builds the stages the way \`sluice run\` would and prints warnings such as
rules that can never match because an earlier rule shadows them, each with file:line. Exit 0 when
the config is usable (warnings included), 2 when it is not, or with --strict when there are warnings.
Needs no privileges and changes nothing.
Without -c the config is $SLUICE_CONFIG, else /etc/sluice/sluice.yaml.
`;

export async function checkCommand(argv: string[]): Promise<number> {
  const a = parse(argv, { config: { type: 'string', short: 'c' }, quiet: { type: 'boolean', short: 'q' }, strict: { type: 'boolean' } }, HELP);
  if (!a) return 0;
  a.values.config = configFile(a.values.config);
  // Read with the 5 s timeout (a hung network filesystem is an error, not a hang), once: the
  // warnings' file:line come from the same text.
  const text = await readConfigText(a.values.config);
  const cfg = await configFromText(text, a.values.config);
  // Building the stages catches what a schema cannot (unknown named sets, conflicting marks...).
  const quietLog = { info() {}, warn() {} };
  const stages = buildStages(cfg, { log: quietLog, stateDir: '/nonexistent' });
  const warnings = checkWarnings(cfg);
  const where = warnings.length > 0 ? configLocator(a.values.config, text) : null;
  for (const w of warnings) process.stderr.write(`${where!(w.path)}: warning: ${w.message}\n`);
  if (a.values.strict && warnings.length > 0) {
    process.stderr.write(`sluice: ${warnings.length} warning(s) and --strict: refused\n`);
    return 2;
  }
  if (!a.values.quiet) {
    process.stdout.write(`${a.values.config}: ok (queues ${cfg.queues.map((q) => (cfg.workers > 1 ? `${q.num}-${q.num + cfg.workers - 1}` : String(q.num))).join(', ')}${cfg.workers > 1 ? ` over ${cfg.workers} worker threads` : ''}; stages ${stages.map((s) => s.stage.name).join(' → ') || 'none: every packet gets its queue\'s default verdict'})\n`);
  }
  return 0;
}
