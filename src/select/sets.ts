/**
 * Named sets, as nftables and ipset users keep them, for the selector language: address sets (`src:
 * '@clients'`), port sets (`dport: '@web'`) and interface sets (`in: '@wan'`), each written inline
 * in the YAML or kept in a file with one element per line:
 *
 *   address_sets:
 *     clients: { file: clients.txt }        # relative to the config file
 *     office: [10.1.0.0/16, 192.0.2.7]
 *
 * A file may hold blank lines and `#` comments; every element is validated, and a bad one is reported
 * with the file and line (`clients.txt:12: 10.0.0.300: an IPv4 address, prefix ...`), then the YAML
 * position of the `file:` key, by `sluice check` and at load/reload.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const SET_NAME = /^[A-Za-z0-9_.-]+$/;
/** Elements per set: an ipset of 100k entries is common; beyond a few million is a mistake. */
export const MAX_SET_ELEMENTS = 4_000_000;
const setName = z.string().regex(SET_NAME, 'set names: letters, digits, _ . -');

/**
 * Set files read ahead by the config loader (config/load.ts: bounded, with its read timeout), by
 * absolute path: the text, or the Error its read ended with. Set only while a config is validated.
 */
let preread: ReadonlyMap<string, string | Error> | null = null;

/** Runs `fn` (a validation) with these set files' texts in place of reading them. */
export function withSetFiles<T>(texts: ReadonlyMap<string, string | Error>, fn: () => T): T {
  preread = texts;
  try { return fn(); } finally { preread = null; }
}

/** Lines of a set file as [line number, text], comments and blank lines dropped. */
export function setFileLines(path: string): [number, string][] {
  const out: [number, string][] = [];
  const got = preread?.get(path);
  if (got instanceof Error) throw got;
  const text = got ?? readFileSync(path, 'utf8');
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.replace(/#.*/, '').trim();
    if (t !== '') out.push([i + 1, t]);
  }
  return out;
}

/**
 * A set: a non-empty list of elements, or `{ file }` read at load time into that list. `element`
 * validates one element (the same schema the inline list uses).
 */
export function setSchema<T extends z.ZodType>(element: T, parse: (text: string) => unknown = (s) => s) {
  return z.union([
    z.array(element).min(1).max(MAX_SET_ELEMENTS),
    z.object({ file: z.string().min(1).describe('one element per line; # comments') }).strict(),
  ]).transform((v, ctx): z.infer<T>[] => {
    if (Array.isArray(v)) return v;
    let lines: [number, string][];
    try {
      lines = setFileLines(v.file);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `cannot read ${v.file}: ${(e as Error).message}` });
      return z.NEVER;
    }
    if (lines.length === 0) { ctx.addIssue({ code: 'custom', message: `${v.file}: no elements` }); return z.NEVER; }
    if (lines.length > MAX_SET_ELEMENTS) { ctx.addIssue({ code: 'custom', message: `${v.file}: more than ${MAX_SET_ELEMENTS} elements` }); return z.NEVER; }
    const out: z.infer<T>[] = [];
    let bad = 0;
    for (const [n, text] of lines) {
      const r = element.safeParse(parse(text));
      if (r.success) { out.push(r.data as z.infer<T>); continue; }
      // Every bad line is worth knowing, but a file of garbage should not print a million lines.
      if (++bad <= 20) ctx.addIssue({ code: 'custom', message: `${v.file}:${n}: ${text}: ${r.error.issues[0]?.message ?? 'invalid'}` });
    }
    if (bad > 20) ctx.addIssue({ code: 'custom', message: `${v.file}: ${bad - 20} more bad lines` });
    return bad > 0 ? z.NEVER : out;
  });
}

export const namedSets = <T extends z.ZodType>(set: T) => z.record(setName, set);

/** Numbers in files are text: `443` → 443, `0x10` → 16; ranges stay strings. */
export const numberOrText = (s: string): unknown => (/^(0x[0-9a-fA-F]+|\d+)$/.test(s) ? Number(s) : s);

/**
 * Makes the `file:` paths of the named sets and maps in a config section absolute, relative to the
 * config file's directory (the loader calls this before validation), and returns them.
 */
export function resolveSetFiles(section: unknown, resolvePath: (p: string) => string): string[] {
  const paths: string[] = [];
  if (!section || typeof section !== 'object') return paths;
  for (const key of ['address_sets', 'port_sets', 'interface_sets', 'maps']) {
    const sets = (section as Record<string, unknown>)[key];
    if (!sets || typeof sets !== 'object') continue;
    for (const v of Object.values(sets as Record<string, unknown>)) {
      const holder = key === 'maps' && v && typeof v === 'object' ? (v as Record<string, unknown>).elements : v;
      if (holder && typeof holder === 'object' && !Array.isArray(holder) && typeof (holder as { file?: unknown }).file === 'string') {
        (holder as { file: string }).file = resolvePath((holder as { file: string }).file);
        paths.push((holder as { file: string }).file);
      }
    }
  }
  return paths;
}
