/**
 * The engine's own counters (`engine.*`): verdict totals, holds, injections, stage throws, and one
 * drop reason per packet-layer parse error. Registered once per Engine; the batch loop bumps them by
 * the ids returned here.
 */
import { PARSE_ERROR_NAMES } from '../packet/errors';
import type { Counters } from './counters';

/** Counter ids of the engine's events, by what they count. */
export type EngineCounterIds = Record<'packets' | 'batches' | 'accepted' | 'dropped' | 'held' | 'answered' | 'marked' |
  'rewritten' | 'heldExpired' | 'heldCap' | 'released' | 'stageErrors' | 'tickErrors' | 'injected' | 'injectFailed' |
  'truncatedRewrite' | 'heldOrphaned', number>;

/** Registers the engine's counters; `invalidIds[reason]` is the counter of a parse error (packet/errors.ts). */
export function registerEngineCounters(counters: Counters): { c: EngineCounterIds; invalidIds: number[] } {
  const r = (name: string, help: string, drop = false) => counters.register(`engine.${name}`, help, drop);
  const c: EngineCounterIds = {
    packets: r('packets', 'packets received from all sources'),
    batches: r('batches', 'batches received from all sources'),
    accepted: r('accepted', 'packets given an accept verdict'),
    dropped: r('dropped', 'packets given a drop verdict (sum of all drop reasons)'),
    held: r('held', 'packets held by a stage'),
    answered: r('answered', 'packets a stage answered itself (consumed)'),
    marked: r('marked', 'verdicts that set a mark'),
    rewritten: r('rewritten', 'verdicts carrying a rewritten payload'),
    heldExpired: r('held_expired', 'held packets whose timeout passed (default verdict applied)'),
    heldCap: r('held_cap', 'hold requests refused because the held-packet cap was reached'),
    released: r('released', 'held packets released by their stage'),
    stageErrors: r('stage_error', 'packets on which a stage threw (a bug; fail-closed stages drop, fail-open ones pass it on), all stages', false),
    tickErrors: r('tick_error', 'stage housekeeping (tick, hold expiry) threw: a bug, logged; packets keep flowing'),
    injected: r('injected', 'packets injected by stages'),
    injectFailed: r('inject_failed', 'injections the kernel refused'),
    truncatedRewrite: r('truncated_rewrite', 'truncated packets (copy_range, GSO) a stage rewrote: the rewrite cannot be sent back whole, dropped', true),
    heldOrphaned: r('held_orphaned', 'held packets whose stage a reload removed (its timeout verdict applied)'),
  };
  return { c, invalidIds: PARSE_ERROR_NAMES.map((n) => r(`invalid.${n}`, `packets the packet layer rejected: ${n}`, true)) };
}
