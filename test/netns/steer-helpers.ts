/**
 * Shared by the steer/policy namespace tests: packet captures that return decoded lines, and the
 * rules tool (generated kernel rules applied / removed inside a namespace).
 */
import { join, resolve } from 'node:path';
import type { Lab, Namespace } from './lab';

export const FIXTURES = resolve(__dirname, 'fixtures');
/** The source tree's fixtures (python scripts are not compiled into dist/). */
export const SRC_FIXTURES = resolve(__dirname, '../../../test/netns/fixtures');
export const EXAMPLES = resolve(__dirname, '../../../examples');

export interface Capture { stop(): Promise<string[]> }

/** tcpdump on dev (inside ns) with a filter; stop() returns one line per captured packet. */
export async function capture(lab: Lab, ns: Namespace, dev: string, filter: string): Promise<Capture> {
  const file = join(lab.dir, `${ns.name}-${dev}-${Math.random().toString(36).slice(2, 8)}.pcap`);
  const p = ns.spawn(['tcpdump', '-ni', dev, '--immediate-mode', '-U', '-w', file, ...filter.split(' ')]);
  await p.waitFor(/listening on/);
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 200));
      await p.stop('SIGTERM');
      const out = await ns.exec(['tcpdump', '-nr', file], { allowFail: true });
      return out.stdout.split('\n').filter((l) => l.trim() !== '');
    },
  };
}

/** apply | remove | restore | restore-remove | text, for the config file, inside ns. */
export async function rulesTool(lab: Lab, ns: Namespace, op: string, configFile: string): Promise<string> {
  const r = await ns.exec(['env', `SLUICE_RT_TABLES=${join(lab.dir, `${ns.name}.rt_tables`)}`, process.execPath,
    join(FIXTURES, 'steer-rules.js'), op, configFile]);
  return r.stdout;
}
