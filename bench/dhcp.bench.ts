/**
 * DHCP stage throughput in process (no kernel): INFORM answers per second (parse + scope + ACK build +
 * IP/UDP checksums) and relay forwards per second (request to one server, reply to the client).
 *   node --expose-gc dist/bench/dhcp.bench.js [--quick]
 * Each figure is the best of 3 runs; classify() is included in the "stage" columns and measured alone.
 */
import { dhcpConfigSchema } from '../src/dhcp/config';
import { DhcpStage } from '../src/dhcp/stage';
import { InformResponder } from '../src/dhcp/inform';
import { compileScope } from '../src/dhcp/compile';
import { Decision, type PacketContext } from '../src/engine/stage';
import { Classified, classify } from '../src/packet/classify';
import { HOOK_INPUT } from '../src/engine/stage';
import { ip4 } from '../src/packet/bytes';
import { FakeServices, iface, udpDhcp, windowsInform, opt, MAC } from '../test/kit/dhcp';

const quick = process.argv.includes('--quick');
const N = quick ? 50_000 : 300_000;

const SCOPE = {
  subnet_mask: '255.255.255.0', routers: ['10.9.0.1'], dns_servers: ['10.9.0.1', '10.9.0.2'], domain_name: 'vpn.example',
  classless_routes: [{ destination: '10.20.0.0/16', router: '10.9.0.1' }, { destination: '192.168.77.0/24', router: '10.9.0.254' }],
  classless_default_route: true,
};
const WIN_PRL = [1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252];

function best(fn: () => number): number {
  let b = 0;
  for (let r = 0; r < 3; r++) b = Math.max(b, fn());
  return b;
}

function rate(n: number, body: () => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) body();
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function runner(stage: DhcpStage, pkt: Uint8Array, indev: number): () => void {
  const info = new Classified();
  const d = new Decision();
  const ctx: PacketContext = { bytes: pkt, offset: 0, length: pkt.length, capacity: pkt.length, mark: 0, indev, outdev: 0, hook: HOOK_INPUT, queue: 0, info };
  return () => { classify(info, pkt, 0, pkt.length); d.reset(); stage.process(ctx, d); };
}

function main(): void {
  const fs = new FakeServices([iface('ppp0', 5, '10.9.0.1'), iface('wan0', 2, '203.0.113.1'), iface('lan0', 3, '192.168.50.1')]);
  fs.record = false;
  const inform = new DhcpStage(dhcpConfigSchema.parse({
    inform: { interfaces: ['ppp*'], scopes: [{ match: { interfaces: ['ppp*'] }, ...SCOPE }],
      rate_limit: { per_client: 1e12, burst: 1_000_000_000, total: 1e12 } },
  }));
  inform.init(fs);
  const req = udpDhcp('10.9.0.50', '255.255.255.255', 68, 67, windowsInform(WIN_PRL));
  const dhcpOff = 28, dhcpLen = req.length - 28;
  const core = new InformResponder([compileScope(dhcpConfigSchema.parse({ inform: { interfaces: ['x'], scopes: [SCOPE] } }).inform!.scopes[0]!, 0)]);
  const answerOnly = best(() => rate(N, () => { core.answer(req, dhcpOff, dhcpLen, ip4('10.9.0.50'), 0, ip4('10.9.0.1')); }));
  const informStage = best(() => rate(N, runner(inform, req, 5)));
  const info = new Classified();
  const classifyOnly = best(() => rate(N, () => classify(info, req, 0, req.length)));

  const relay = new DhcpStage(dhcpConfigSchema.parse({
    relay: { interfaces: [{ name: 'lan0' }], servers: [{ address: '203.0.113.10', interface: 'wan0' }], agent_info: { remote_id: 'gw1' } },
  }));
  relay.init(fs);
  const disc = udpDhcp('0.0.0.0', '255.255.255.255', 68, 67, { op: 1, xid: 7, chaddr: MAC, options: [opt(53, 1), opt(55, 1, 3, 6, 15, 121), opt(61, 1, ...MAC)] });
  const fwd = best(() => rate(N, runner(relay, disc, 3)));
  const c82 = new TextEncoder().encode('lan0');
  const offer = udpDhcp('203.0.113.10', '192.168.50.1', 67, 67, { op: 2, xid: 7, hops: 1, chaddr: MAC, giaddr: ip4('192.168.50.1'), yiaddr: ip4('192.168.50.100'),
    options: [opt(53, 2), opt(54, 203, 0, 113, 10), opt(1, 255, 255, 255, 0), opt(51, 0, 0, 14, 16), opt(82, 1, c82.length, ...c82, 2, 3, 0x67, 0x77, 0x31)] });
  const back = best(() => rate(N, runner(relay, offer, 2)));

  const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
  const ns = (x: number): string => (1e9 / x).toFixed(0);
  process.stdout.write([
    `# DHCP stage, in process (${N} iterations, best of 3)`,
    '| path | per second | ns each |',
    '| --- | ---: | ---: |',
    `| INFORM: InformResponder.answer (parse + ACK build + checksums) | ${fmt(answerOnly)} | ${ns(answerOnly)} |`,
    `| INFORM: whole stage incl. classify, scope, rate limit, inject call | ${fmt(informStage)} | ${ns(informStage)} |`,
    `| classify() of the INFORM alone | ${fmt(classifyOnly)} | ${ns(classifyOnly)} |`,
    `| relay: client DISCOVER → 1 server (giaddr, hops, 82, checksums) | ${fmt(fwd)} | ${ns(fwd)} |`,
    `| relay: server OFFER → client (82 stripped, L2 unicast) | ${fmt(back)} | ${ns(back)} |`,
    '',
  ].join('\n'));
  const st = inform.stats().counters as Record<string, number>;
  if (st['dhcp.inform.answered']! < N) throw new Error(`bench did not answer every INFORM: ${JSON.stringify(st)}`);
}

main();
