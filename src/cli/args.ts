/** Command-line parsing shared by the commands: node's parseArgs plus `--help` and clear usage errors. */
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

/** The control socket: --socket, else the config's control.socket, else the default. */
export async function socketPath(values: { config?: string; socket?: string }): Promise<string> {
  if (values.socket) return values.socket;
  if (values.config) {
    const { loadConfig } = await import('../config/load');
    return loadConfig(values.config).control.socket;
  }
  return configSchema.parse({}).control.socket;
}
