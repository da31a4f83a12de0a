/**
 * Bounds on config input, checked before and right after parsing: a config is small, so anything
 * huge or deeply nested is refused with a clear error (exit 2) instead of taking seconds, gigabytes
 * or the process (a 10 KB `[[[[...` file once exhausted the regexp compiler's memory on reload).
 * Also: only regular files are read (a FIFO would block forever), with a timeout on the read.
 */
import * as fs from 'node:fs';
import { isAlias, isCollection, type Document, type Node } from 'yaml';

export const MAX_CONFIG_BYTES = 1 << 20;
/** Nesting of mappings and sequences (block or flow); real configs stay under 10. */
export const MAX_CONFIG_DEPTH = 32;
/** Mapping pairs, sequence items and scalars together. */
export const MAX_CONFIG_NODES = 50_000;
/** Alias expansions when the document is turned into plain data (YAML "billion laughs"). */
export const MAX_CONFIG_ALIASES = 64;
/** Reading the file (a hung network filesystem) takes no longer than this. */
export const CONFIG_READ_TIMEOUT_MS = 5000;

/** Raised for every bounds violation; load.ts turns it into a ConfigError. */
export class BoundsError extends Error {}

function describe(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** What a bounded read is of: the config itself, or a set file it names (`{ file: ... }`). */
interface ReadKind { what: string; maxBytes: number }
const CONFIG: ReadKind = { what: 'a config', maxBytes: MAX_CONFIG_BYTES };
/** A set file holds up to MAX_SET_ELEMENTS (4M) lines of an address, port or name. */
export const MAX_SET_FILE_BYTES = 256 << 20;
const SET_FILE: ReadKind = { what: 'a set file', maxBytes: MAX_SET_FILE_BYTES };

function checkStat(file: string, st: fs.Stats, kind: ReadKind): void {
  if (!st.isFile()) throw new BoundsError(`${file}: is ${describe(st)}; sluice reads ${kind === CONFIG ? 'its config' : 'set files'} only from a regular file`);
  if (st.size > kind.maxBytes) throw new BoundsError(`${file}: ${st.size} bytes; ${kind.what} may have at most ${kind.maxBytes} bytes`);
}

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY;

/**
 * Reads a config file, the one way every command does: a regular file only (a FIFO is refused
 * without blocking), at most MAX_CONFIG_BYTES, off the event loop and given up after `timeoutMs`
 * (a hung network filesystem). A read given up on is still pending in libuv's thread pool and keeps
 * the process alive: a command that fails on it exits at once (cli/main.ts, ConfigError).
 */
export function readConfigFile(file: string, timeoutMs = CONFIG_READ_TIMEOUT_MS): Promise<string> {
  return readBounded(file, timeoutMs, CONFIG);
}

/** A set file named by the config, the same way (regular file, at most MAX_SET_FILE_BYTES, timeout). */
export function readSetFile(file: string, timeoutMs = CONFIG_READ_TIMEOUT_MS): Promise<string> {
  return readBounded(file, timeoutMs, SET_FILE);
}

async function readBounded(file: string, timeoutMs: number, kind: ReadKind): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BoundsError(`${file}: reading took longer than ${timeoutMs} ms; refused`)), timeoutMs);
  });
  const read = (async () => {
    const h = await fs.promises.open(file, OPEN_FLAGS);
    try {
      const st = await h.stat();
      checkStat(file, st, kind);
      // A config: room for the largest allowed (1 MiB); a set file (up to 256 MiB): its size. One
      // byte more, so that a file that grows while being read is noticed.
      const cap = kind === CONFIG ? kind.maxBytes : st.size;
      const buf = Buffer.alloc(cap + 1);
      let n = 0;
      for (let r; n < buf.length && (r = (await h.read(buf, n, buf.length - n, null)).bytesRead) > 0;) n += r;
      if (n > cap) throw new BoundsError(`${file}: grew past ${cap} bytes while being read`);
      return buf.toString('utf8', 0, n);
    } finally {
      await h.close();
    }
  })();
  read.catch(() => {}); // when the timeout wins, a later failure of the read is nobody's concern
  try {
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Scans the text before the YAML parser sees it: size, and nesting depth of flow collections
 * (`[`, `{` outside quotes and comments) and of block structure (indentation levels, `- - -`).
 * Returns nothing; throws BoundsError naming the line.
 */
export function checkText(text: string, file: string): void {
  if (text.length > MAX_CONFIG_BYTES) throw new BoundsError(`${file}: ${text.length} characters; a config may have at most ${MAX_CONFIG_BYTES}`);
  let line = 1;
  let flow = 0;
  let quote = 0; // 0, '\'' or '"'
  const indents: number[] = [];
  let atLineStart = true;
  let col = 0;
  let items = 0;
  const tooMany = (): never => {
    throw new BoundsError(`${file}:${line}: more than ${MAX_CONFIG_NODES} YAML nodes; refused`);
  };
  const tooDeep = (what: string): never => {
    throw new BoundsError(`${file}:${line}: ${what} nested deeper than ${MAX_CONFIG_DEPTH} levels; refused`);
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) { line++; atLineStart = true; col = 0; continue; }
    if (atLineStart) {
      if (c === 32) { col++; continue; }
      atLineStart = false;
      if (flow === 0 && quote === 0 && c !== 35 /* # */ && c !== 13) {
        // Block structure: one level per deeper indentation, plus one per `- ` at the line start.
        while (indents.length > 0 && indents[indents.length - 1]! >= col) indents.pop();
        indents.push(col);
        let dashes = 0;
        for (let k = i; text.charCodeAt(k) === 45 /* - */ && text.charCodeAt(k + 1) === 32; k += 2) {
          dashes++;
          while (text.charCodeAt(k + 2) === 32) k++;
        }
        if (indents.length + dashes > MAX_CONFIG_DEPTH) tooDeep('block collections');
        // Every such line is at least one node: refuse before the parser spends seconds on it.
        if (++items > MAX_CONFIG_NODES) tooMany();
      }
    }
    if (quote !== 0) {
      if (c === quote) {
        if (quote === 39 && text.charCodeAt(i + 1) === 39) i++; // '' inside single quotes
        else quote = 0;
      } else if (c === 92 && quote === 34) {
        i++; // escape inside double quotes
      }
      continue;
    }
    if (c === 35 && (i === 0 || text.charCodeAt(i - 1) === 32 || text.charCodeAt(i - 1) === 9 || text.charCodeAt(i - 1) === 10)) {
      while (i + 1 < text.length && text.charCodeAt(i + 1) !== 10) i++;
      continue;
    }
    if (c === 34 || c === 39) {
      const prev = i === 0 ? 32 : text.charCodeAt(i - 1);
      // A quote opens a quoted scalar only where a scalar starts (not inside a plain word like it's).
      if (prev === 32 || prev === 9 || prev === 10 || prev === 91 || prev === 123 || prev === 44 || prev === 58) quote = c;
      continue;
    }
    if (c === 91 || c === 123) { if (++flow + indents.length > MAX_CONFIG_DEPTH) tooDeep('flow collections ([ or {)'); }
    else if ((c === 93 || c === 125) && flow > 0) flow--;
    else if (c === 44 && flow > 0 && ++items > MAX_CONFIG_NODES) tooMany();
  }
}

/** After parsing: node count and depth over the document tree (iterative: no recursion to blow). */
export function checkDocument(doc: Document, file: string): void {
  let nodes = 0;
  const stack: [unknown, number][] = [[doc.contents, 1]];
  while (stack.length > 0) {
    const [n, depth] = stack.pop()!;
    if (n === null || n === undefined) continue;
    if (++nodes > MAX_CONFIG_NODES) throw new BoundsError(`${file}: more than ${MAX_CONFIG_NODES} YAML nodes; refused`);
    if (depth > MAX_CONFIG_DEPTH) throw new BoundsError(`${file}: nested deeper than ${MAX_CONFIG_DEPTH} levels; refused`);
    if (isAlias(n)) continue;
    if (isCollection(n)) {
      for (const item of (n as { items: unknown[] }).items) {
        const it = item as { key?: unknown; value?: unknown };
        if (it && typeof it === 'object' && 'key' in it && 'value' in it) {
          stack.push([it.key, depth + 1], [it.value, depth + 1]);
        } else {
          stack.push([item as Node, depth + 1]);
        }
      }
    }
  }
}
