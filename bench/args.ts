/** Command-line numbers of the benchmarks: `--name N`, with a default when absent. */
export function numArg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  const n = Number(process.argv[i + 1]);
  if (!Number.isFinite(n)) throw new Error(`${name} needs a number, got ${String(process.argv[i + 1])}`);
  return n;
}
