/**
 * The `steer:` section: ordered rules, first match wins. Each rule has a `match:` selector (see
 * src/select/selector.ts; empty matches everything) and an `action:`:
 *
 *   accept | drop | continue                      plain verdicts (continue = hand on to the next stage)
 *   { drop: "why" }                                drop, counted under steer.<rule name>, "why" as help
 *   { mark: "0x10/0xff", then: continue|accept }   MARK --set-xmark: mark = (mark & ~mask) ^ value
 *   { route_via: { dev: eth0, via: 192.0.2.1 } }   sugar: a mark + routing table + `ip rule fwmark`
 *
 * Validated once at load; src/steer/stage.ts compiles it into numbers.
 */
import { z } from 'zod';
import { IPV4_RE, isAddressSpec } from '../select/addr';
import { selectorSchema, selectorSetsShape } from '../select/selector';
import { MAX_SET_ELEMENTS, numberOrText, SET_NAME, setFileLines } from '../select/sets';

const ipv4 = z.string().regex(IPV4_RE, 'an IPv4 address like 192.0.2.1');
const prefix = z.string().refine((s) => isAddressSpec(s) && !s.startsWith('@') && s !== 'any', 'an IPv4 prefix like 10.1.0.0/16');
const ifname = z.string().min(1).max(15).regex(/^[A-Za-z0-9_.:@-]+$/, 'an interface name (no globs here)');
const mark = z.union([z.number().int().min(1).max(0xffffffff),
  z.string().regex(/^(0x[0-9a-fA-F]{1,8}|\d+)(\/(0x[0-9a-fA-F]{1,8}|\d+))?$/, 'a mark like 0x10 or 0x10/0xff')]);
const then = z.enum(['continue', 'accept']).default('continue')
  .describe('after setting the mark: hand on to the next stage (continue) or accept now');
const ruleName = z.string().min(1).max(64).regex(/^[A-Za-z0-9_.-]+$/, 'rule names: letters, digits, _ . -');

export const routeViaSchema = z.object({
  dev: ifname.describe('output interface of the generated route'),
  via: ipv4.optional().describe('next-hop gateway (omit for an on-link route)'),
  src: ipv4.optional().describe('preferred source address of the generated route'),
  table: z.number().int().min(1).max(0xfffffffe).optional().describe('routing table id (default: allocated from route_tables.first_table)'),
  mark: mark.optional().describe('fwmark (default: allocated under route_tables.mark_mask)'),
}).strict();

/**
 * A verdict map (nftables `ip saddr map { ... : mark }`, ipset-style): one packet field → what to do.
 * Elements inline (`{ "10.1.0.0/24": "0x10/0xff" }`) or in a file, one `element value` per line.
 * Elements may not overlap (as in an nftables interval map), so the lookup is exact and order-free.
 */
const mapValue = z.union([z.enum(['accept', 'drop', 'continue']), mark]);
export const MAP_KEYS = ['src', 'dst', 'sport', 'dport', 'esp_spi'] as const;
export type MapKey = typeof MAP_KEYS[number];
const MAP_ELEMENT: Record<MapKey, z.ZodType> = {
  src: z.string().refine((s) => isAddressSpec(s) && !s.startsWith('@') && s !== 'any', 'an IPv4 address or prefix'),
  dst: z.string().refine((s) => isAddressSpec(s) && !s.startsWith('@') && s !== 'any', 'an IPv4 address or prefix'),
  sport: z.coerce.number().int().min(0).max(65535),
  dport: z.coerce.number().int().min(0).max(65535),
  esp_spi: z.coerce.number().int().min(0).max(0xffffffff),
};
/** One map element as loaded: its text, its value, and where it came from (file:line) when from a file. */
export interface MapElement { element: string; value: string | number; where?: string }

export const mapSchema = z.object({
  key: z.enum(MAP_KEYS).describe('the packet field looked up: src, dst (prefixes), sport, dport, esp_spi (exact numbers)'),
  elements: z.union([
    z.record(z.string(), mapValue),
    z.object({ file: z.string().min(1).describe('one `element value` per line; # comments') }).strict(),
  ]),
}).strict().transform((m, ctx) => {
  let list: MapElement[];
  if ('file' in m.elements && typeof m.elements.file === 'string' && Object.keys(m.elements).length === 1) {
    const file = m.elements.file;
    let lines: [number, string][];
    try { lines = setFileLines(file); } catch (e) { ctx.addIssue({ code: 'custom', message: `cannot read ${file}: ${(e as Error).message}` }); return z.NEVER; }
    list = [];
    for (const [n, text] of lines) {
      const parts = text.split(/\s+/);
      if (parts.length !== 2) { ctx.addIssue({ code: 'custom', message: `${file}:${n}: ${text}: want "element value"` }); continue; }
      const v = mapValue.safeParse(numberOrText(parts[1]!));
      if (!v.success) { ctx.addIssue({ code: 'custom', message: `${file}:${n}: ${parts[1]}: ${v.error.issues[0]?.message}` }); continue; }
      list.push({ element: parts[0]!, value: v.data, where: `${file}:${n}` });
    }
  } else {
    list = Object.entries(m.elements as Record<string, string | number>).map(([element, value]) => ({ element, value }));
  }
  if (list.length === 0) ctx.addIssue({ code: 'custom', message: 'a map needs at least one element' });
  if (list.length > MAX_SET_ELEMENTS) ctx.addIssue({ code: 'custom', message: `more than ${MAX_SET_ELEMENTS} elements` });
  let bad = 0;
  for (const e of list) {
    const r = MAP_ELEMENT[m.key].safeParse(e.element);
    if (!r.success && ++bad <= 20) ctx.addIssue({ code: 'custom', message: `${e.where ? `${e.where}: ` : ''}${e.element}: ${r.error.issues[0]?.message} (key: ${m.key})` });
  }
  return { key: m.key, elements: list };
});

export const steerActionSchema = z.union([
  z.enum(['accept', 'drop', 'continue']),
  z.object({ drop: z.string().min(1).max(200).describe('why; becomes the help text of the steer.<rule> drop counter') }).strict(),
  z.object({ mark, then }).strict(),
  z.object({ route_via: routeViaSchema, then }).strict(),
  z.object({ map: z.string().regex(SET_NAME).describe('a name from maps:'), then }).strict()
    .describe('look the packet up in a map: a mark value sets the mark then `then`; accept/drop/continue decide'),
]);

export const steerRuleSchema = z.object({
  name: ruleName,
  match: selectorSchema.prefault({}),
  action: steerActionSchema,
}).strict();

export const localRouteSchema = z.object({
  dst: prefix.describe('destination prefix, e.g. the protected subnet behind the tunnel'),
  dev: ifname,
  src: ipv4.optional().describe('source address locally generated traffic takes (the tunnel-side address)'),
  via: ipv4.optional(),
}).strict();

/** The section's shape; steerConfigSchema (src/steer/schema.ts) adds the compiler's checks. */
export const steerSectionSchema = z.object({
  enabled: z.boolean().default(true),
  ...selectorSetsShape,
  maps: z.record(z.string().regex(SET_NAME, 'map names: letters, digits, _ . -'), mapSchema).default({})
    .describe('verdict maps: field → mark or verdict, used by { map: name } actions'),
  rules: z.array(steerRuleSchema).default([]),
  default: z.enum(['continue', 'accept', 'drop']).default('continue').describe('when no rule matches'),
  route_tables: z.object({
    first_table: z.number().int().min(1).max(0xfffffff0).default(100).describe('route_via tables are allocated from here'),
    mark_mask: z.union([z.number().int().min(1).max(0xffffffff), z.string().regex(/^0x[0-9a-fA-F]{1,8}$/)]).default('0xff00')
      .describe('bits route_via marks are allocated in (other mark bits are left alone)'),
    first_priority: z.number().int().min(1).max(32765).default(1000).describe('`ip rule` priority of the first route_via rule'),
    local_table: z.number().int().min(1).max(0xfffffff0).default(99).describe('table for local_routes'),
    local_priority: z.number().int().min(1).max(32765).default(500).describe('`ip rule iif lo` priority for local_routes'),
  }).strict().prefault({}),
  local_routes: z.array(localRouteSchema).default([])
    .describe('routes for locally generated traffic only (`ip rule iif lo`), e.g. the tunnel-side source address'),
  capture: z.object({
    queue: z.number().int().min(0).max(65535).describe('NFQUEUE number the generated capture rules send to'),
    bypass: z.boolean().default(true).describe('--queue-bypass: the kernel accepts when sluice is not running'),
    hooks: z.array(z.enum(['prerouting', 'input', 'forward', 'output', 'postrouting'])).min(1).default(['prerouting', 'output'])
      .describe('chains for rules that do not name a hook'),
  }).strict().optional().describe('generate mangle-table NFQUEUE rules from the rules\' selectors (a superset of what they match)'),
}).strict();

export type SteerConfig = z.infer<typeof steerSectionSchema>;
export type SteerConfigInput = z.input<typeof steerSectionSchema>;
export type SteerRule = z.infer<typeof steerRuleSchema>;
export type SteerAction = z.infer<typeof steerActionSchema>;
export type RouteVia = z.infer<typeof routeViaSchema>;
