/**
 * Shared stage infrastructure below the stages: the selector language (src/select/selector.ts), its
 * address sets (addr.ts) and interface globs (glob.ts), the compiled first-match classifier
 * (match.ts, prefilter.ts), shadowed-rule detection for `sluice check` (shadow.ts) and the iptables
 * matches capture rules are written from (iptmatch.ts). steer and policy are its two users; it
 * depends on the packet layer only.
 */
export { normalizeSelector, selectorSchema, addressSetsSchema, HOOKS, type SelectorConfig, type NormSelector, type NormFields } from './selector';
export { AddrRanges, isAddressSpec, prefixRange, compileAddresses, type AddressSets } from './addr';
export { globToRegExp, normGlob } from './glob';
export { Matcher, type MatchInput, type InterfaceNames } from './match';
export { covers, shadowWarnings } from './shadow';
export { iptMatches, chainsFor } from './iptmatch';
