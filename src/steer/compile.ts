/**
 * From a validated `steer:` section to plain numbers: normalized selectors, one action per rule, and
 * the marks / routing tables `route_via` allocates. Shared by the stage (src/steer/stage.ts), the
 * kernel-rule generator (src/steer/rules.ts) and `sluice check`. Throws Error naming the rule on
 * problems the schema cannot see (unknown address sets, too many route_via targets for the mask).
 */
import type { MapElement, MapKey, SteerConfig, SteerRule } from './config';
import { normalizeSelector, parseMark, type NormSelector, type SelectorConfig } from '../select/selector';
import { prefixRange } from '../select/addr';
import type { MatchRow } from '../select/match';
import { runSteps, type Steps } from '../select/steps';

export const enum ActionType { CONTINUE = 0, ACCEPT = 1, DROP = 2 }

export interface CompiledAction {
  /** Verdict after the mark (if any) is set. */
  type: ActionType;
  /** markMask 0: no mark. */
  markValue: number;
  markMask: number;
  /** Help text for the drop counter steer.<rule>. */
  dropHelp: string;
  /** Index into routes for route_via rules, else -1. */
  route: number;
}

export interface RouteAlloc {
  dev: string;
  via?: string;
  src?: string;
  table: number;
  tableName: string;
  markValue: number;
  markMask: number;
  priority: number;
  /** Rules that use this route. */
  rules: string[];
}

export interface CompiledSteer {
  names: string[];
  /** Per rule, what it matches (a map rule: its match and the map's elements), for checks and iptables. */
  sels: NormSelector[];
  /** Per rule (a map rule: the action of its first element; see rowActions). */
  actions: CompiledAction[];
  routes: RouteAlloc[];
  defaultType: ActionType;
  /**
   * What the classifier runs: one row per plain rule and one per map element (in rule order, map
   * elements together at their rule's place), each with its action and the rule it counts for.
   */
  matchSels: NormSelector[];
  rows: MatchRow[];
  rowActions: CompiledAction[];
  rowRule: number[];
}

const MAP_VERDICT = { accept: ActionType.ACCEPT, drop: ActionType.DROP, continue: ActionType.CONTINUE } as const;

/** A map's elements as classifier keys; throws on overlapping elements (the lookup must be exact). */
function mapKeys(name: string, key: MapKey, elements: MapElement[]): { value: number; mask: number; hi: number }[] {
  const at = (e: MapElement): string => (e.where ? `${e.where}: ${e.element}` : e.element);
  const keys = elements.map((e) => {
    if (key === 'src' || key === 'dst') {
      const [lo, hi] = prefixRange(e.element);
      const len = e.element.includes('/') ? Number(e.element.split('/')[1]) : 32;
      return { value: lo, mask: len === 0 ? 0 : len === 32 ? -1 : (0xffffffff << (32 - len)) | 0, hi };
    }
    const v = Number(e.element);
    return { value: v, mask: -1, hi: v };
  });
  const order = keys.map((_, i) => i).sort((a, b) => (keys[a]!.value >>> 0) - (keys[b]!.value >>> 0));
  for (let i = 1; i < order.length; i++) {
    const p = keys[order[i - 1]!]!, q = keys[order[i]!]!;
    if ((q.value >>> 0) <= p.hi) {
      throw new Error(`maps.${name}: elements ${at(elements[order[i - 1]!]!)} and ${at(elements[order[i]!]!)} overlap (a map lookup must name one element)`);
    }
  }
  return keys;
}

const TYPE = { continue: ActionType.CONTINUE, accept: ActionType.ACCEPT, drop: ActionType.DROP } as const;

function ctz(m: number): number {
  let n = 0;
  while (n < 32 && ((m >>> n) & 1) === 0) n++;
  return n;
}

export function hex(n: number): string { return `0x${(n >>> 0).toString(16)}`; }

export function compileSteer(cfg: SteerConfig): CompiledSteer {
  return runSteps(compileSteerSteps(cfg));
}

/** compileSteer as steps (a yield every 256 rules), for a reload that keeps the packet loop turning. */
export function* compileSteerSteps(cfg: SteerConfig): Steps<CompiledSteer> {
  const names: string[] = [];
  const sels: NormSelector[] = [];
  const actions: CompiledAction[] = [];
  const routes: RouteAlloc[] = [];
  const routeKeys = new Map<string, number>();
  const seen = new Set<string>();
  const rt = cfg.route_tables;
  const mask = typeof rt.mark_mask === 'number' ? rt.mark_mask >>> 0 : Number(rt.mark_mask) >>> 0;
  const shift = ctz(mask);
  const explicitTables = new Set(cfg.rules.flatMap((r) => (typeof r.action === 'object' && 'route_via' in r.action && r.action.route_via.table ? [r.action.route_via.table] : [])));
  let nextTable = rt.first_table;
  let autoMarks = 0;

  const matchSels: NormSelector[] = [], rows: MatchRow[] = [], rowActions: CompiledAction[] = [], rowRule: number[] = [];
  for (let i = 0; i < cfg.rules.length; i++) {
    const rule: SteerRule = cfg.rules[i]!;
    if ((i & 255) === 255) yield;
    const where = `rules[${i}] (${rule.name})`;
    if (seen.has(rule.name)) throw new Error(`${where}: the name ${rule.name} is used twice`);
    seen.add(rule.name);
    names.push(rule.name);
    const a = rule.action;
    if (typeof a === 'object' && 'map' in a) {
      const m = cfg.maps[a.map];
      if (!m) throw new Error(`${where}: unknown map ${a.map} (maps: ${Object.keys(cfg.maps).join(', ') || 'none'})`);
      if ((rule.match as Record<string, unknown>)[m.key] !== undefined) {
        throw new Error(`${where}: match.${m.key} and a map on ${m.key}: put that condition into the map's elements`);
      }
      let keys;
      try {
        keys = mapKeys(a.map, m.key, m.elements);
        // What the rule matches as a whole: its match, and the key in the map's elements.
        const whole = { ...rule.match, [m.key]: m.elements.map((e) => (m.key === 'src' || m.key === 'dst' ? e.element : Number(e.element))) } as SelectorConfig;
        sels.push(normalizeSelector(whole, cfg));
        matchSels.push(normalizeSelector(rule.match, cfg));
      } catch (e) {
        throw new Error(`${where}: ${(e as Error).message}`);
      }
      const sel = matchSels.length - 1;
      m.elements.forEach((el, j) => {
        const v = el.value;
        const act: CompiledAction = { type: ActionType.CONTINUE, markValue: 0, markMask: 0, dropHelp: '', route: -1 };
        if (typeof v === 'string' && v in MAP_VERDICT) {
          act.type = MAP_VERDICT[v as keyof typeof MAP_VERDICT];
          if (act.type === ActionType.DROP) act.dropHelp = `dropped by steer rule ${rule.name} (map ${a.map})`;
        } else {
          const mk = parseMark(v);
          act.type = TYPE[a.then]; act.markValue = mk.value; act.markMask = mk.mask;
        }
        rows.push({ sel, key: { field: m.key, value: keys[j]!.value, mask: keys[j]!.mask } });
        rowActions.push(act); rowRule.push(i);
      });
      actions.push(rowActions[rowActions.length - m.elements.length]!);
      continue;
    }
    try {
      sels.push(normalizeSelector(rule.match, cfg));
    } catch (e) {
      throw new Error(`${where}.match: ${(e as Error).message}`);
    }
    matchSels.push(sels[sels.length - 1]!);
    rows.push({ sel: matchSels.length - 1 });
    rowRule.push(i);
    const act: CompiledAction = { type: ActionType.CONTINUE, markValue: 0, markMask: 0, dropHelp: '', route: -1 };
    if (typeof a === 'string') {
      act.type = TYPE[a];
      if (a === 'drop') act.dropHelp = `dropped by steer rule ${rule.name}`;
    } else if ('drop' in a) {
      act.type = ActionType.DROP;
      act.dropHelp = a.drop;
    } else if ('mark' in a) {
      const m = parseMark(a.mark);
      act.type = TYPE[a.then];
      act.markValue = m.value;
      act.markMask = m.mask;
    } else {
      const v = a.route_via;
      const key = JSON.stringify([v.dev, v.via ?? '', v.src ?? '', v.table ?? 0, v.mark ?? '']);
      let idx = routeKeys.get(key);
      if (idx === undefined) {
        let markValue: number, markMask: number;
        if (v.mark !== undefined) {
          ({ value: markValue, mask: markMask } = parseMark(v.mark));
        } else {
          autoMarks++;
          markValue = (autoMarks << shift) >>> 0;
          markMask = mask;
          if (shift >= 32 || (markValue & ~mask) !== 0 || markValue === 0) {
            throw new Error(`${where}: route_tables.mark_mask ${hex(mask)} has no room for ${autoMarks} route_via marks`);
          }
        }
        let table = v.table;
        if (table === undefined) {
          while (explicitTables.has(nextTable)) nextTable++;
          table = nextTable++;
        }
        idx = routes.length;
        const base = `sluice.${v.dev}${v.via ? `.via.${v.via}` : ''}`;
        const tableName = routes.some((r) => r.tableName === base) ? `${base}.${idx}` : base;
        routes.push({
          dev: v.dev, via: v.via, src: v.src, table, tableName, markValue, markMask,
          priority: rt.first_priority + idx, rules: [],
        });
        routeKeys.set(key, idx);
      }
      const r = routes[idx]!;
      r.rules.push(rule.name);
      act.type = TYPE[a.then];
      act.markValue = r.markValue;
      act.markMask = r.markMask;
      act.route = idx;
    }
    actions.push(act);
    rowActions.push(act);
  }
  const marks = new Map<string, number>();
  for (const r of routes) {
    const k = `${r.markValue}/${r.markMask}`;
    if (marks.has(k) && routes[marks.get(k)!]!.table !== r.table) {
      throw new Error(`route_via: mark ${hex(r.markValue)}/${hex(r.markMask)} is used for tables ${routes[marks.get(k)!]!.table} and ${r.table}`);
    }
    marks.set(k, routes.indexOf(r));
  }
  return { names, sels, actions, routes, defaultType: TYPE[cfg.default], matchSels, rows, rowActions, rowRule };
}
