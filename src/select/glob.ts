/**
 * Interface-name globs as selectors and stage configs write them: shell-style `*` and `?`
 * (`ppp*`, `ipsec?`), and iptables' trailing `+` (`eth+` is `eth*`).
 */

/** Turns `in: eth+` (iptables spelling) into the glob `eth*`. */
export function normGlob(g: string): string { return g.endsWith('+') ? `${g.slice(0, -1)}*` : g; }

/** Shell-style glob (`*`, `?`) over interface names, e.g. `ppp*`, `ipsec?`. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}
