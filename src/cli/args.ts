/** Command-line parsing shared by the commands: node's parseArgs plus `--help` and clear usage errors. */
import { existsSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { configSchema } from '../config/schema';

export class UsageError extends Error {}

/** A parsed command line, or null when --help was printed. */
export function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O, help: string,
  allowPositionals = false): ReturnType<typeof parseArgs<{ options: O & { help: { type: 'boolean'; short: 'h' } }; allowPositionals: boolean; args: string[] }>> | null {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${help}`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(help);
    return null;
  }
  return parsed as never;
}

export const socketOptions = {
  config: { type: 'string', short: 'c' },
  socket: { type: 'string', short: 's' },
} as const;

/** The config run, check and rules read without -c: the systemd units' ConfigurationDirectory. */
export const DEFAULT_CONFIG = '/etc/sluice/sluice.yaml';

/** The default config path: $SLUICE_CONFIG when set (tests, several installs), else DEFAULT_CONFIG. */
export function defaultConfig(): string {
  return process.env.SLUICE_CONFIG || DEFAULT_CONFIG;
}

/** -c FILE, else the default config; a missing default is a usage error that says what to do. */
export function configFile(given: string | undefined): string {
  if (given) return given;
  const file = defaultConfig();
  if (!existsSync(file)) throw new UsageError(`no -c FILE given and the default config ${file} does not exist (examples/ has configs to start from)`);
  return file;
}

/**
 * The control socket: --socket, else -c FILE's control.socket, else the default config's when it
 * exists and is valid (so `sluice stats` finds the service started from it), else the built-in
 * default (/run/sluice/sluice.sock).
 */
export async function socketPath(values: { config?: string; socket?: string }): Promise<string> {
  if (values.socket) return values.socket;
  const { loadConfig } = await import('../config/load');
  if (values.config) return (await loadConfig(values.config)).control.socket;
  const file = defaultConfig();
  if (existsSync(file)) {
    try {
      return (await loadConfig(file)).control.socket;
    } catch (e) {
      // A read that hung is said (and ends the command: it would keep the process waiting).
      if ((e as Error).message.includes('reading took longer than')) throw e;
      // Unreadable or invalid: the running sluice may still use the default; say nothing here.
    }
  }
  return configSchema.parse({}).control.socket;
}
