/**
 * Reads a YAML config, validates it against the schema, and turns every problem into a ConfigError
 * that names the file, line, column and field path (`nat.servers[2]: Invalid IPv4 prefix`).
 */
import { dirname, resolve } from 'node:path';
import { BoundsError, MAX_CONFIG_ALIASES, checkDocument, checkText, readConfigFile, readSetFile } from './bounds';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Node } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema';
import { resolveSetFiles, withSetFiles } from '../select/sets';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(top level)';
}

/** Finds the YAML node for a path; for unknown keys, the key node itself. */
function locate(doc: ReturnType<typeof parseDocument>, path: readonly PropertyKey[], key?: string): Node | undefined {
  let node: unknown = doc.contents;
  let found: Node | undefined = node as Node | undefined;
  for (const p of path) {
    const next = (node as { get?: (k: unknown, keep: boolean) => unknown })?.get?.(p, true);
    if (next === undefined) break;
    node = next;
    found = next as Node;
  }
  if (key !== undefined && isMap(node)) {
    const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && it.key.value === key);
    if (pair && isPair(pair)) return pair.key as Node;
  }
  return found;
}

/** A config's YAML parsed and bounds-checked, its set files' paths resolved; not validated yet. */
interface Parsed { raw: Record<string, unknown>; doc: ReturnType<typeof parseDocument>; where: (offset: number | undefined) => string; setFiles: string[] }

/** Parses and validates a config's text (set files it names are read synchronously: tests, tools). */
export function parseConfigText(text: string, file = '<config>'): Config {
  return validate(parse(text, file));
}

function parse(text: string, file: string): Parsed {
  try {
    checkText(text, file);
  } catch (e) {
    if (e instanceof BoundsError) throw new ConfigError([e.message]);
    throw e;
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const where = (offset: number | undefined): string => {
    if (offset === undefined) return file;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => `${where(e.pos[0])}: YAML: ${e.message.split('\n')[0]}`));
  }
  let raw: unknown;
  try {
    checkDocument(doc, file);
    raw = doc.toJS({ maxAliasCount: MAX_CONFIG_ALIASES }) ?? {};
  } catch (e) {
    if (e instanceof BoundsError) throw new ConfigError([e.message]);
    // yaml's alias guard ("Excessive alias count indicates a resource exhaustion attack").
    if (e instanceof ReferenceError) {
      throw new ConfigError([/Excessive alias/.test(e.message)
        ? `${file}: YAML aliases expand too much (more than ${MAX_CONFIG_ALIASES} uses); refused`
        : `${file}: YAML: ${e.message}`]);
    }
    throw e;
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError([`${file}: the config must be a YAML mapping`]);
  // Set and map files (`address_sets: {x: {file: x.txt}}`) are named relative to the config file.
  const setFiles = ['steer', 'policy'].flatMap((section) => resolveSetFiles((raw as Record<string, unknown>)[section], (p) => resolve(dirname(file), p)));
  return { raw: raw as Record<string, unknown>, doc, where, setFiles };
}

function validate(p: Parsed, setTexts?: ReadonlyMap<string, string | Error>): Config {
  const { raw, doc, where } = p;
  const result = setTexts ? withSetFiles(setTexts, () => configSchema.safeParse(raw)) : configSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems: string[] = [];
  for (const issue of result.error.issues as z.core.$ZodIssue[]) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const node = locate(doc, issue.path, k);
        problems.push(`${where(node?.range?.[0])}: ${pathText([...issue.path, k])}: unknown key (allowed: see docs/config.md)`);
      }
      continue;
    }
    const node = locate(doc, issue.path);
    problems.push(`${where(node?.range?.[0])}: ${pathText(issue.path)}: ${issue.message}`);
  }
  throw new ConfigError(problems);
}

function readError(file: string, e: unknown): ConfigError {
  return new ConfigError([e instanceof BoundsError ? e.message : `${file}: cannot read: ${(e as Error).message}`]);
}

/**
 * Reads a config's text (a regular file only, bounded in size, given up after CONFIG_READ_TIMEOUT_MS
 * unless `timeoutMs`); a problem is a ConfigError naming the file (exit 2). Every command reads its
 * config through here (or loadConfig), so none of them hangs on a hung filesystem.
 */
export async function readConfigText(file: string, timeoutMs?: number): Promise<string> {
  try {
    return await readConfigFile(file, timeoutMs);
  } catch (e) {
    throw readError(file, e);
  }
}

/**
 * Reads (as readConfigText) and validates a config; every problem is a ConfigError (exit 2).
 * `onRead` is called between reading and parsing.
 */
export async function loadConfig(file: string, opts: { readTimeoutMs?: number; onRead?: () => void } = {}): Promise<Config> {
  const text = await readConfigText(file, opts.readTimeoutMs);
  opts.onRead?.();
  return configFromText(text, file, opts.readTimeoutMs);
}

/**
 * Parses and validates a config's text read by readConfigText, reading the set files it names
 * the same bounded way (parseConfigText reads them synchronously).
 */
export async function configFromText(text: string, file: string, readTimeoutMs?: number): Promise<Config> {
  const parsed = parse(text, file);
  // The set files it names, the same way (in parallel, each with the timeout); a read that fails
  // is reported where the set is validated, naming the set.
  const texts = new Map<string, string | Error>();
  await Promise.all([...new Set(parsed.setFiles)].map(async (f) => {
    try { texts.set(f, await readSetFile(f, readTimeoutMs)); } catch (e) { texts.set(f, e as Error); }
  }));
  const hung = [...texts.values()].find((v) => v instanceof BoundsError && v.message.includes('reading took longer than'));
  // A hung read ends the command (cli/main.ts exits at once on a ConfigError): say so plainly.
  if (hung) throw new ConfigError([(hung as Error).message]);
  return validate(parsed, texts);
}

/**
 * Where a config path is in a file ("file:line:col"), for messages about a config that is valid
 * but questionable (`sluice check` warnings); `text` is what was read (readConfigText).
 */
export function configLocator(file: string, text: string): (path: (string | number)[]) => string {
  let doc: ReturnType<typeof parseDocument> | null = null;
  const lineCounter = new LineCounter();
  try {
    doc = parseDocument(text, { lineCounter, prettyErrors: false });
  } catch {
    doc = null;
  }
  return (path) => {
    const node = doc ? locate(doc, path) : undefined;
    const off = node?.range?.[0];
    if (off === undefined) return file;
    const { line, col } = lineCounter.linePos(off);
    return `${file}:${line}:${col}`;
  };
}
