/**
 * Runs inside a fresh network namespace (rtnl.test.ts): the interface table tracked from rtnetlink
 * events follows links and addresses as `ip` changes them, and the kernel's route lookup honours
 * `ip rule` where /proc/net/route (main table only) does not. Prints one JSON line of findings.
 */
import { execFileSync } from 'node:child_process';
import { Interfaces } from '../../src/io/interfaces';
import { ip4 as ipv4ToNumber } from '../../src/packet/bytes';
import { loadBinding } from '../../src/io/binding';
import { kernelRouteLookup } from '../../src/dhcp/route';

const sh = (...args: string[]): void => { execFileSync('ip', args); };
const ifs = new Interfaces();
let refreshes = 0;
ifs.onRefresh(() => { refreshes++; });

/** Waits (event loop running, so events arrive) until cond() or 2 s. */
async function until(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

async function main(): Promise<void> {
  ifs.track(loadBinding());
  const out: Record<string, unknown> = { tracking: ifs.tracking, initial: ifs.all().map((i) => i.name) };
  sh('link', 'add', 'ppp7', 'type', 'ifb');
  sh('link', 'set', 'ppp7', 'up');
  out.linkSeen = await until(() => ifs.indexOf('ppp7') > 0);
  const idx = ifs.indexOf('ppp7');
  sh('addr', 'add', '10.77.0.1/32', 'dev', 'ppp7');
  out.addrSeen = await until(() => ifs.ipv4Of(idx) === ipv4ToNumber('10.77.0.1'));
  out.prefix = ifs.info(idx)?.prefixLength;
  sh('link', 'set', 'ppp7', 'name', 'ppp8');
  out.renamed = await until(() => ifs.nameOf(idx) === 'ppp8' && ifs.indexOf('ppp7') === 0);
  sh('addr', 'del', '10.77.0.1/32', 'dev', 'ppp8');
  out.addrGone = await until(() => ifs.ipv4Of(idx) === 0);
  sh('link', 'del', 'ppp8');
  out.linkGone = await until(() => ifs.info(idx) === undefined);
  out.refreshes = refreshes;
  // Routes: main table via wan0; a policy rule sends fwmark 0x10 to table 100 via tun0.
  sh('link', 'add', 'wan0', 'type', 'bridge'); sh('link', 'set', 'wan0', 'up'); sh('addr', 'add', '192.168.50.1/24', 'dev', 'wan0');
  sh('link', 'add', 'tun0', 'type', 'bridge'); sh('link', 'set', 'tun0', 'up'); sh('addr', 'add', '10.99.0.1/24', 'dev', 'tun0');
  sh('route', 'add', 'default', 'via', '192.168.50.254', 'dev', 'wan0');
  sh('route', 'add', '198.51.100.0/24', 'dev', 'tun0', 'table', '100');
  sh('rule', 'add', 'fwmark', '0x10', 'lookup', '100');
  await until(() => ifs.indexOf('tun0') > 0 && ifs.indexOf('wan0') > 0);
  const dst = ipv4ToNumber('198.51.100.7');
  out.kernelPlain = ifs.nameOf(ifs.route(dst)?.ifindex ?? 0);
  out.kernelMarked = ifs.nameOf(ifs.route(dst, 0x10)?.ifindex ?? 0);
  out.gateway = ifs.route(dst)?.gateway;
  out.procRoute = kernelRouteLookup()(dst);
  out.noRoute = ifs.route(ipv4ToNumber('203.0.113.9'), 0x10) === null ? 'via default' : 'route';
  sh('route', 'del', 'default');
  out.unreachable = ifs.route(ipv4ToNumber('203.0.113.9'));
  ifs.stopTracking();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().then(() => process.exit(0), (e: Error) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
