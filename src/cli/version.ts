/**
 * `sluice --version`: the package version, then which native addon this install loads (a
 * development build or the shipped prebuild) and whether it loads. An operator checks an install
 * with it: exit 1 when the addon does not load, since `sluice run` would fail the same way.
 */
import { relative } from 'node:path';
import { addonPath, loadBinding, packageRoot } from '../io/binding';

export async function versionCommand(): Promise<number> {
  const root = packageRoot();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { version } = require(`${root}/package.json`) as { version: string };
  process.stdout.write(`sluice ${version} (node ${process.versions.node}, ${process.platform}-${process.arch})\n`);
  const path = addonPath();
  try {
    loadBinding();
  } catch (e) {
    process.stdout.write(`addon: does not load: ${(e as Error).message}\n`);
    return 1;
  }
  const rel = relative(root, path!);
  const kind = rel.startsWith('prebuilds/') ? 'prebuilt' : 'built here';
  process.stdout.write(`addon: ${kind}, ${rel}, loads\n`);
  return 0;
}
