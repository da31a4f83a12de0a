/**
 * Shared by the steer/policy namespace tests: packet captures that return decoded lines, and
 * `sluice rules` inside a namespace (routing-table names go to a file in the lab directory: the
 * namespaces share /etc with the host).
 */
import { join, resolve } from 'node:path';
import type { Lab, Namespace } from './lab';
import { SLUICE_MAIN } from '../../src/lab/sluice';

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

/** `sluice rules -c FILE [--apply | --remove | --iptables]` inside ns (op: apply, remove, restore, text). */
export async function rulesTool(lab: Lab, ns: Namespace, op: 'apply' | 'remove' | 'restore' | 'text', configFile: string): Promise<string> {
  const flag = { apply: ['--apply'], remove: ['--remove'], restore: ['--iptables'], text: [] }[op];
  const r = await ns.exec(['env', `SLUICE_RT_TABLES=${join(lab.dir, `${ns.name}.rt_tables`)}`, process.execPath,
    SLUICE_MAIN, 'rules', '-c', configFile, ...flag]);
  return r.stdout;
}
