/**
 * Real strongSwan peers against sluice's SPI learning (issue 10): the situations scripted peers
 * cannot fake, with charon's own timers and retransmissions.
 *
 *   c1..cN 192.168.1.11.. (vips 10.99.0.x) ─ br0 [gw + sluice] wan0 203.0.113.1 ─ 203.0.113.10 [sv, 10.2.0.1]
 *
 * 1. 8 IKEv2 clients (kernel-libipsec, `start_action = start`) whose configs are loaded at the same
 *    instant, so all 8 IKE_SA_INITs and IKE_AUTHs cross sluice together; then no traffic for 15 s
 *    (every host is owed an inbound SA, none has sent ESP); then every client pings through its
 *    tunnel; then all 8 rekey their CHILD_SAs at once, stay silent 10 s, and ping on the new SAs.
 *    Run with charon's default retransmission and with an impatient one (0.5 s, base 1.4, 3 tries:
 *    a client gives up ~3.5 s after its first request). Checks: every IKE SA and CHILD_SA
 *    established, at most 1 IKE retransmission per client, all pings answered, the first within 1 s,
 *    0 misrouted (each client's inbound SPIs as charon lists them are mapped by sluice to that client
 *    and no other), no ambiguous or unknown SPI. Diagnostics: establishment times, IKE
 *    retransmissions and COOKIEs (charon logs), first-ping RTTs, nat.* counters, `sa-learning` while
 *    the hosts are silent, machine load; tcpdump of IKE (and ESP) when something went wrong.
 * 2. 3 IKEv1 clients (Main Mode + Mode Config + Quick Mode) with pings flowing throughout:
 *    client-initiated Quick Mode rekeys of all 3 at once, then a server-side rekey of all 3; then
 *    silent Quick Mode rekeys of all 3 and pings 10 s later; then Main Mode reauthentication from
 *    the clients (mapped to their hosts) and from the server (refused: nat.unknown_ike). Same checks.
 * 3. Late answers (server stopped with SIGSTOP): 0.5 s late while the host keeps sending (a misroute
 *    at e1da7c6, fixed since); a single packet answered later than probe_ms (todo: the known limit).
 * 4. Known gaps, kept as `todo` (they run, report, and do not fail the suite; drop the todo when
 *    fixed): the server speaking first on a new IKE SA while another host is owed one too; the late
 *    single answer of 3 (both in docs/nat.md, "What still needs luck").
 *
 * Control: the same 8 impatient clients through kernel MASQUERADE only (strongSwan's NAT-T works
 * through it: the kernel remaps the source ports; LAB.md), as the baseline for establishment time
 * and IKE retransmissions. The MASQUERADE control that fails (raw ESP) is in nat-esp.test.ts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { labSkipReason, sleep, until, type Proc } from '../../src/lab/lab';
import { Charon, charonLogStats, type CharonLogStats, ikev1PskClient, ikev1PskServer, ikev2PskClient, ikev2PskServer, ipsecSkipReason, type IkeSa } from '../../src/lab/ipsec';
import type { SluiceProcess as SluiceProcessT } from '../../src/lab/sluice';
import { applyNatRules, natSection, natTopo, natYaml, SERVER, type NatTopo } from './fixtures/nat-lab';

function skip(): string | false {
  const r = labSkipReason() || ipsecSkipReason();
  if (r) return r;
  if (!existsSync(resolve(__dirname, '../../src/io/nfqueue.js'))) return 'NFQUEUE binding not built';
  return false;
}

type SaRow = { spi: string; spi_r?: string; packets: number; learned?: string };
type SaList = { host: string; ike: SaRow[]; esp_in: SaRow[]; esp_out: SaRow[] }[];
const saList = async (sl: SluiceProcessT): Promise<SaList> => await sl.request('stage', { stage: 'nat', name: 'sa-list', args: {} }) as SaList;
const saLearning = async (sl: SluiceProcessT): Promise<unknown> => await sl.request('stage', { stage: 'nat', name: 'sa-learning', args: {} });

async function natCounters(sl: SluiceProcessT): Promise<string> {
  const st = await sl.stats();
  return st.counters.filter((c) => c.value !== 0 && (c.name.startsWith('nat.') || c.name.startsWith('engine.'))).map((c) => `${c.name}=${c.value}`).join(' ');
}

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
const hostOf = (k: number): string => `192.168.1.${11 + k}`;

interface PingResult { sent: number; received: number; firstRtt: number | null }
function pingResult(p: Proc): PingResult {
  const m = p.stdout.match(/(\d+) packets transmitted, (\d+) (packets )?received/);
  const first = p.stdout.match(/icmp_seq=1 ttl=\d+ time=([\d.]+) ms/);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), firstRtt: first ? Number(first[1]) : null };
}

/**
 * The server admits many half-open IKE SAs from one address, as it must for clients behind one NAT:
 * strongSwan's default block_threshold (5 half-open IKE SAs per peer IP) silently ignores the 6th
 * client's IKE_SA_INIT, through plain MASQUERADE as through sluice (measured here: 3 of 8 clients
 * ignored, each retransmitting after retransmit_timeout). COOKIEs (cookie_threshold_ip, 3) stay on.
 */
const SERVER_EXTRA = 'block_threshold = 64';

interface Lab { tp: NatTopo; sl: SluiceProcessT | null; sv: Charon; clients: Charon[] }

/**
 * Topology, sluice (or, for the control, only the kernel MASQUERADE), a server charon and n idle
 * client charons (configs not loaded yet).
 */
async function setup(t: TestContext, prefix: string, n: number, clientExtra: string, withSluice = true): Promise<Lab> {
  const { SluiceProcess } = await import('../../src/lab/sluice');
  const tp = await natTopo(prefix, n);
  t.after(() => tp.lab.cleanup());
  let sl: SluiceProcessT | null = null;
  if (withSluice) {
    const nat = natSection(tp.lab);
    const yaml = natYaml(nat);
    await applyNatRules(tp.gw, nat, SluiceProcess.write(tp.lab, 'rules.yaml', yaml));
    sl = await SluiceProcess.start(tp.lab, tp.gw, yaml);
  } else await tp.gw.sh('iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE');
  await tp.sv.sh('ip addr add 10.2.0.1/24 dev lo');
  const [sv, ...clients] = await Promise.all([
    Charon.start(tp.lab, tp.sv, 'sv', { extra: SERVER_EXTRA }),
    ...tp.clients.map(async (ns, k) => {
      // Until the tunnel is up nothing may reach 10.2.0.0/24 around it (the user MASQUERADE would carry it).
      await ns.sh('ip route add unreachable 10.2.0.0/24');
      return Charon.start(tp.lab, ns, `c${k + 1}`, { extra: clientExtra });
    }),
  ]);
  return { tp, sl, sv: sv!, clients };
}

/**
 * 0 misrouted: every inbound SPI a client's charon has used (`spis[k]`) is mapped by sluice to that
 * client and to no other host.
 */
function assertOwnSpis(list: SaList, spis: string[][]): void {
  for (const [k, mine] of spis.entries()) {
    const host = hostOf(k);
    const own = new Set(list.filter((g) => g.host === host).flatMap((g) => g.esp_in.map((e) => e.spi)));
    const others = new Set(list.filter((g) => g.host !== host).flatMap((g) => g.esp_in.map((e) => e.spi)));
    for (const spi of mine) {
      assert.ok(own.has(spi), `client ${k + 1}: inbound SPI ${spi} mapped to ${host} (sluice has ${[...own].join(',')})`);
      assert.ok(!others.has(spi), `client ${k + 1}: inbound SPI ${spi} also mapped to another host`);
    }
  }
}

const inboundSpis = (sas: IkeSa[]): string[] => sas.flatMap((s) => s.children.map((c) => c.spiIn));
const installedSpis = (sas: IkeSa[]): string[] => sas.flatMap((s) => s.children.filter((c) => c.state === 'INSTALLED').map((c) => c.spiIn));

const REKEY_SILENT_MS = 10000;

/**
 * Every client rekeys its CHILD_SA at the same moment with no traffic (IKEv2 CREATE_CHILD_SA or
 * IKEv1 Quick Mode), all stay silent REKEY_SILENT_MS, then each pings on its new SA: all answered,
 * the first within 1 s, no client retransmitted its rekey more than once, every inbound SPI (old and
 * new) mapped to its own client only.
 */
async function silentRekeyThenPing(t: TestContext, diag: (s: string) => void, sl: SluiceProcessT, clients: Charon[], tp: NatTopo, earlier: string[][]): Promise<void> {
  const before = await Promise.all(clients.map(async (c) => inboundSpis(await c.sas())));
  const retx0 = clients.map((c) => charonLogStats(c.log()).retransmits);
  const logLen = clients.map((c) => c.log().length);
  const dumps = ['br0', 'wan0'].map((dev) => tp.gw.spawn(['tcpdump', '-tt', '-nli', dev, '--immediate-mode', 'udp port 500 or (udp port 4500 and udp[8:4] == 0)']));
  await Promise.all(dumps.map((d) => d.waitFor(/listening on/)));
  const t0 = Date.now();
  await Promise.all(clients.map((c) => c.rekeyChild('c')));
  await until(async () => {
    const now = await Promise.all(clients.map(async (c) => installedSpis(await c.sas())));
    return now.every((spis, k) => spis.length > 0 && spis.every((x) => !before[k]!.includes(x)));
  }, 30000, 'every client rekeyed').catch(async (e) => {
    for (const c of clients) diag(`${c.name}: ${JSON.stringify(await c.sas())}\n${c.log().slice(-2000)}`);
    diag(`counters ${await natCounters(sl)}; sa-learning ${JSON.stringify(await saLearning(sl))}`);
    throw e;
  });
  const retx = clients.map((c, k) => charonLogStats(c.log()).retransmits - retx0[k]!);
  const waits = clients.map((c, k) => exchangeMs(c.log().slice(logLen[k])));
  diag(`silent rekeys of ${clients.length} clients done in ${Date.now() - t0} ms; request→response per client [${waits.join(',')}] ms; IKE retransmissions [${retx.join(',')}]; counters ${await natCounters(sl)}`);
  await sleep(200);
  for (const d of dumps) {
    await d.stop('SIGINT');
    if (retx.some((n) => n > 0)) diag(`IKE on ${d.cmd[3]} during the rekeys:\n${d.stdout.trim()}`);
  }
  for (const [k, c] of clients.entries()) {
    if (retx[k]! > 0) diag(`${c.name} (${hostOf(k)}) rekey log:\n${c.log().slice(logLen[k]).split('\n').filter((l) => /CREATE_CHILD_SA|QUICK_MODE|retransmit|giving up/.test(l)).join('\n')}`);
  }
  await sleep(REKEY_SILENT_MS / 2);
  diag(`sa-learning while silent after the rekeys: ${JSON.stringify(await saLearning(sl))}`);
  await sleep(REKEY_SILENT_MS / 2);
  const pingers = tp.clients.map((ns) => ns.spawn(['ping', '-n', '-c', '5', '-i', '0.2', '-W', '3', '10.2.0.1']));
  await Promise.all(pingers.map((p) => p.exited));
  const pings = pingers.map(pingResult);
  const list = await saList(sl);
  diag(`pings on the new SAs ${pings.map((p) => `${p.received}/${p.sent}`).join(' ')}; first-ping RTT ms [${pings.map((p) => p.firstRtt ?? '-').join(',')}]; counters ${await natCounters(sl)}`);
  diag(`sluice sa: ${list.map((g) => `${g.host} in ${g.esp_in.map((e) => `${e.spi}(${e.packets},${e.learned})`).join(',')}`).join(' | ')}`);
  const after = await Promise.all(clients.map(async (c) => inboundSpis(await c.sas())));
  for (const [k, p] of pings.entries()) {
    assert.equal(p.received, p.sent, `client ${k + 1}: ${p.received}/${p.sent} pings on the new SA answered`);
    assert.ok(p.firstRtt !== null && p.firstRtt < 1000, `client ${k + 1}: first ping on the new SA answered within 1 s (${p.firstRtt} ms)`);
  }
  assertOwnSpis(list, after.map((spis, k) => [...new Set([...earlier[k]!, ...before[k]!, ...spis])]));
  assert.equal(await sl.counter('nat.ambiguous'), 0, 'no ambiguous SPI dropped');
  assert.equal(await sl.counter('nat.unknown_spi'), 0, 'no unknown SPI');
  // Issue 10: never hold another host's IKE message for more than about a second because a host is
  // idle; never make a client retransmit IKE twice because of sluice. Rekeys open windows even while
  // others are owed, one at a time, until one has waited window_max_ms / 2; the rest go on without.
  await t.test(`silent rekeys of ${clients.length} at once: each answered within 1 s, at most 1 retransmission`, () => {
    for (const [k, w] of waits.entries()) {
      assert.ok(w !== null && w <= 1000, `client ${k + 1}: rekey request answered after ${w} ms (at most 1000)`);
      assert.ok(retx[k]! <= 1, `client ${k + 1}: ${retx[k]} IKE retransmissions of its rekey (at most 1)`);
    }
  });
}

/** First SA-creating request → its response in a charon log excerpt (CREATE_CHILD_SA or Quick Mode), ms. */
function exchangeMs(log: string): number | null {
  const at = (re: RegExp): number | null => {
    const line = log.split('\n').find((l) => re.test(l));
    const m = line ? /^(\d\d):(\d\d):(\d\d)\.(\d{3}) /.exec(line) : null;
    return m ? ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]) : null;
  };
  const a = at(/generating (CREATE_CHILD_SA|QUICK_MODE) request/);
  const b = at(/parsed (CREATE_CHILD_SA|QUICK_MODE) response/);
  return a === null || b === null ? null : b - a;
}

const N8 = 8;
const SILENT_MS = 15000;
const PINGS8 = 10;
const IMPATIENT = 'retransmit_timeout = 0.5\n  retransmit_base = 1.4\n  retransmit_tries = 3';

interface EightResult { retransmits: number[]; blocked: number }

/**
 * 8 clients load their configs at once (start_action = start), then (with sluice) stay silent for
 * SILENT_MS, then ping. Without sluice (the control) they ping as soon as all are up.
 */
async function eightAtOnce(t: TestContext, label: string, clientExtra: string, withSluice: boolean): Promise<EightResult> {
  const { tp, sl, sv, clients } = await setup(t, `ssl${label}`, N8, clientExtra, withSluice);
  const diag = (s: string): void => t.diagnostic(`${label}: ${s}`);
  diag(`load before start ${load()}`);
  await sv.load(ikev2PskServer({ local: SERVER, pool: '10.99.0.0/24', localTs: '10.2.0.0/24' }));
  // IKE on both sides of the gateway, as text: the evidence for any retransmission.
  const dumps = ['br0', 'wan0'].map((dev) => tp.gw.spawn(['tcpdump', '-tt', '-nli', dev, '--immediate-mode', 'udp port 500 or (udp port 4500 and udp[8:4] == 0)']));
  await Promise.all(dumps.map((d) => d.waitFor(/listening on/)));

  // All 8 configs at once: start_action = start makes each charon initiate on load.
  const t0 = Date.now();
  await Promise.all(clients.map((c, k) => c.load(ikev2PskClient({
    id: `c${k + 1}@lab`, local: hostOf(k), remote: SERVER, remoteTs: '10.2.0.0/24', startAction: 'start',
  }))));
  const stats = (): CharonLogStats[] => clients.map((c) => charonLogStats(c.log()));
  let settled = true;
  await until(() => stats().every((s) => s.childEstablished !== null || s.gaveUp > 0), 60000, 'every client established or gave up')
    .catch(() => { settled = false; });
  const wall = Date.now() - t0;
  const st = stats();
  const svSt = charonLogStats(sv.log());
  const starts = st.map((s) => s.initiated).filter((x): x is number => x !== null);
  const t1 = Math.min(...starts);
  const rel = (x: number | null): string => (x === null ? 'never' : String(x - t1));
  diag(`initiations spread over ${Math.max(...starts) - t1} ms; IKE SA established at +[${st.map((s) => rel(s.ikeEstablished)).join(',')}] ms, CHILD_SA at +[${st.map((s) => rel(s.childEstablished)).join(',')}] ms (wall ${wall} ms from loading the configs)`);
  diag(`IKE retransmissions per client [${st.map((s) => s.retransmits).join(',')}] (total ${st.reduce((a, s) => a + s.retransmits, 0)}), gave up [${st.map((s) => s.gaveUp).join(',')}], COOKIE answers [${st.map((s) => s.cookiesReceived).join(',')}]; server ignored ${svSt.blocked} IKE_SA_INIT (half-open limit per peer IP) and retransmitted ${svSt.retransmits}; load ${load()}`);
  if (sl) diag(`counters after establishment: ${await natCounters(sl)}`);
  const evidence = !settled || st.some((s) => s.retransmits > 0);
  for (const [k, c] of clients.entries()) {
    if (settled && st[k]!.retransmits === 0) continue;
    diag(`${c.name} (${hostOf(k)}) IKE log:\n${c.log().split('\n').filter((l) => /\[(IKE|NET|ENC)\]/.test(l)).slice(0, 40).join('\n')}`);
  }
  await sleep(200);
  for (const d of dumps) {
    await d.stop('SIGINT');
    if (evidence) diag(`tcpdump ${d.cmd[3]}:\n${d.stdout.split('\n').slice(0, 120).join('\n')}`);
  }
  assert.ok(settled, 'every client established or gave up within 60 s');

  if (sl) {
    // Silence: no ESP on any SA; sluice has 8 hosts owed an inbound SA.
    await sleep(SILENT_MS / 2);
    diag(`sa-learning while silent: ${JSON.stringify(await saLearning(sl))}`);
    await sleep(SILENT_MS / 2);
  }

  // ESP on both sides of the gateway while the first packets probe: which SPI reached which host.
  const espDumps = ['br0', 'wan0'].map((dev) => tp.gw.spawn(['tcpdump', '-tt', '-nli', dev, '--immediate-mode', '-c', '400', 'udp port 4500 and udp[8:4] != 0']));
  await Promise.all(espDumps.map((d) => d.waitFor(/listening on/)));
  const pingers = tp.clients.map((ns) => ns.spawn(['ping', '-n', '-c', String(PINGS8), '-i', '0.2', '-W', '3', '10.2.0.1']));
  await Promise.all(pingers.map((p) => p.exited));
  const pings = pingers.map(pingResult);
  diag(`pings ${pings.map((p) => `${p.received}/${p.sent}`).join(' ')}; first-ping RTT ms [${pings.map((p) => p.firstRtt ?? '-').join(',')}]`);
  const list = sl ? await saList(sl) : [];
  const clientSas = await Promise.all(clients.map((c) => c.sas()));
  diag(`charon inbound SPIs: ${clientSas.map((sas, k) => `${hostOf(k)} ${inboundSpis(sas).join(',')}`).join(' | ')}`);
  if (sl) {
    diag(`counters ${await natCounters(sl)}`);
    diag(`sluice sa: ${list.map((g) => `${g.host} in ${g.esp_in.map((e) => `${e.spi}(${e.packets},${e.learned})`).join(',')}`).join(' | ')}`);
  }
  diag(`load after ${load()}`);
  await sleep(200);
  const failed = pings.some((p) => p.received !== p.sent);
  for (const d of espDumps) {
    await d.stop('SIGINT');
    if (failed) diag(`ESP on ${d.cmd[3]} (first packets):\n${d.stdout.split('\n').slice(0, 80).join('\n')}`);
  }
  if (sl) assertOwnSpis(list, clientSas.map(inboundSpis));

  for (const [k, sas] of clientSas.entries()) {
    assert.equal(sas.filter((s) => s.state === 'ESTABLISHED').length, 1, `client ${k + 1}: one IKE SA established (${JSON.stringify(sas.map((s) => s.state))})`);
    assert.equal(installedSpis(sas).length, 1, `client ${k + 1}: one CHILD_SA installed`);
  }
  assert.equal((await sv.sas()).filter((s) => s.state === 'ESTABLISHED').length, N8, 'server: 8 IKE SAs');
  for (const [k, p] of pings.entries()) {
    assert.equal(p.sent, PINGS8, `client ${k + 1}: ping ran`);
    assert.equal(p.received, p.sent, `client ${k + 1}: ${p.received}/${p.sent} pings answered`);
  }
  for (const [k, s] of st.entries()) {
    assert.equal(s.gaveUp, 0, `client ${k + 1}: charon gave up IKE`);
    // The server admits every half-open SA (SERVER_EXTRA): what is left is retransmission sluice caused.
    assert.ok(s.retransmits <= 1, `client ${k + 1}: ${s.retransmits} IKE retransmissions (at most 1)`);
  }
  for (const [k, p] of pings.entries()) assert.ok(p.firstRtt !== null && p.firstRtt < 1000, `client ${k + 1}: first ping answered within 1 s (${p.firstRtt} ms)`);
  if (sl) {
    assert.equal(await sl.counter('nat.ambiguous'), 0, 'no ambiguous SPI dropped');
    assert.equal(await sl.counter('nat.unknown_spi'), 0, 'no unknown SPI');
    await silentRekeyThenPing(t, diag, sl, clients, tp, clientSas.map(inboundSpis));
  }
  await Promise.all([...clients, sv].map((c) => c.stop()));
  await sl?.stop();
  return { retransmits: st.map((s) => s.retransmits), blocked: svSt.blocked };
}

test('strongSwan: 8 IKEv2 clients start at the same instant (default retransmission), silent 15 s, pings; rekeys of all 8 at once, silent 10 s, pings: all established, all answered, 0 misrouted', { skip: skip(), timeout: 180000 }, async (t) => {
  await eightAtOnce(t, 'def', '', true);
});

test('strongSwan: 8 IKEv2 clients start at the same instant (retransmit 0.5 s, base 1.4, 3 tries), silent 15 s, pings; rekeys of all 8 at once, silent 10 s, pings: all established, all answered, 0 misrouted', { skip: skip(), timeout: 180000 }, async (t) => {
  await eightAtOnce(t, 'fast', IMPATIENT, true);
});

test('control: the same 8 impatient clients through kernel MASQUERADE only (no sluice): establishment and IKE retransmissions without sluice', { skip: skip(), timeout: 180000 }, async (t) => {
  await eightAtOnce(t, 'kern', IMPATIENT, false);
});

const N1 = 3;
const V1_PINGS = 120;

test('strongSwan: 3 IKEv1 clients, Quick Mode rekeys of all 3 at once then a server-side rekey, pings throughout; then silent Quick Mode rekeys of all 3, silent 10 s, pings; Main Mode reauthentications (clients: mapped; server: refused, counted): all answered, 0 misrouted', { skip: skip(), timeout: 180000 }, async (t) => {
  const { tp, sl: slOrNull, sv, clients } = await setup(t, 'sslv1', N1, '');
  const sl = slOrNull!;
  const diag = (s: string): void => t.diagnostic(s);
  diag(`load before start ${load()}`);
  await sv.load(ikev1PskServer({ local: SERVER, pool: '10.99.0.0/24', localTs: '10.2.0.0/24' }));
  await Promise.all(clients.map((c, k) => c.load(ikev1PskClient({ id: `c${k + 1}@lab`, local: hostOf(k), remote: SERVER, remoteTs: '10.2.0.0/24' }))));

  // All three initiate at once; each pings from the moment its tunnel is up until the end.
  const t0 = Date.now();
  const pingers: Proc[] = await Promise.all(clients.map(async (c, k) => {
    await c.initiate('c');
    return tp.clients[k]!.spawn(['ping', '-n', '-c', String(V1_PINGS), '-i', '0.1', '-W', '2', '10.2.0.1']);
  }));
  diag(`all 3 established in ${Date.now() - t0} ms`);
  await sleep(2500);
  const spis0 = await Promise.all(clients.map(async (c) => inboundSpis(await c.sas())));

  const rekeyed = async (before: string[][], what: string): Promise<void> => {
    await until(async () => {
      const now = await Promise.all(clients.map(async (c) => installedSpis(await c.sas())));
      return now.every((spis, k) => spis.length > 0 && spis.every((s) => !before[k]!.includes(s)));
    }, 20000, what).catch(async (e) => {
      for (const c of [...clients, sv]) diag(`${c.name}: ${JSON.stringify(await c.sas())}\n${c.log().slice(-2500)}`);
      diag(`counters ${await natCounters(sl)}; sa-learning ${JSON.stringify(await saLearning(sl))}`);
      throw e;
    });
    diag(`${what} at +${Date.now() - t0} ms`);
  };

  // Quick Mode rekeys from every client at the same moment.
  await Promise.all(clients.map((c) => c.rekeyChild('c')));
  await rekeyed(spis0, 'client Quick Mode rekeys done');
  await sleep(2500);
  const spis1 = await Promise.all(clients.map(async (c) => inboundSpis(await c.sas())));

  // The server rekeys all three CHILD_SAs (config name 's') at once.
  await sv.rekeyChild('s');
  await rekeyed(spis1, 'server Quick Mode rekeys done');
  assert.ok(pingers.every((p) => p.running), 'pings still running after both rekeys (they flowed throughout)');

  await Promise.all(pingers.map((p) => p.exited));
  const pings = pingers.map(pingResult);
  const list = await saList(sl);
  diag(`pings ${pings.map((p) => `${p.received}/${p.sent}`).join(' ')}; counters ${await natCounters(sl)}`);
  diag(`sluice sa: ${list.map((g) => `${g.host} in ${g.esp_in.map((e) => `${e.spi}(${e.packets},${e.learned})`).join(',')}`).join(' | ')}`);
  diag(`charon: ${clients.map((c) => { const s = charonLogStats(c.log()); return `${c.name} children ${s.children} retransmits ${s.retransmits}`; }).join('; ')}; load ${load()}`);

  const clientSas = await Promise.all(clients.map((c) => c.sas()));
  for (const [k, sas] of clientSas.entries()) {
    assert.match(clients[k]!.log(), /\] initiating Main Mode IKE_SA/, `client ${k + 1}: IKEv1 Main Mode`);
    assert.equal(sas.filter((s) => s.state === 'ESTABLISHED').length, 1, `client ${k + 1}: one IKE SA`);
    assert.ok(installedSpis(sas).length >= 1, `client ${k + 1}: a CHILD_SA installed`);
  }
  for (const [k, p] of pings.entries()) {
    assert.equal(p.sent, V1_PINGS, `client ${k + 1}: ping ran`);
    assert.equal(p.received, p.sent, `client ${k + 1}: ${p.received}/${p.sent} pings answered`);
  }
  const all = clientSas.map((sas, k) => [...new Set([...spis0[k]!, ...spis1[k]!, ...inboundSpis(sas)])]);
  assertOwnSpis(list, all);
  assert.equal(await sl.counter('nat.ambiguous'), 0, 'no ambiguous SPI dropped');
  assert.equal(await sl.counter('nat.unknown_spi'), 0, 'no unknown SPI');

  // Then Quick Mode rekeys of all 3 with no traffic before or after (windows cannot learn: probes must).
  await silentRekeyThenPing(t, diag, sl, clients, tp, all);

  // IKEv1 has no in-place IKE SA rekey: charon reauthenticates with a new Main Mode (new cookies in
  // cleartext). From the clients (all 3 at once) the host speaks first: mapped, 0 misrouted.
  const ike0 = await Promise.all(clients.map(async (c) => (await c.sas()).map((x) => x.spiI)));
  await Promise.all(clients.map((c) => c.rekeyIke('c')));
  await until(async () => (await Promise.all(clients.map(async (c, k) => (await c.sas()).some((x) => x.state === 'ESTABLISHED' && !ike0[k]!.includes(x.spiI))))).every(Boolean), 20000, 'client reauthentications');
  const listR = await saList(sl);
  for (const [k, c] of clients.entries()) {
    for (const x of (await c.sas()).filter((y) => y.state === 'ESTABLISHED')) {
      const same = (r: SaRow): boolean => r.spi === x.spiI && (r.spi_r === x.spiR || r.spi_r === '0000000000000000');
      assert.ok(listR.find((g) => g.host === hostOf(k))?.ike.some(same), `client ${k + 1}: IKE SA ${x.spiI}/${x.spiR} mapped to ${hostOf(k)} (${JSON.stringify(listR.map((g) => [g.host, g.ike]))})`);
      assert.ok(!listR.some((g) => g.host !== hostOf(k) && g.ike.some(same)), `client ${k + 1}: IKE SA ${x.spiI}/${x.spiR} mapped to no other host`);
    }
  }
  // From the server, a new Main Mode to the shared public address carries nothing that says which
  // host it is for (ports 500/4500 are shared by design): refused and counted, never guessed.
  const unknownIke0 = await sl.counter('nat.unknown_ike');
  const responders0 = await Promise.all(clients.map(async (c) => (await c.sas()).filter((x) => !x.initiator).length));
  await sv.rekeyIke('s');
  await until(async () => (await sl.counter('nat.unknown_ike')) - unknownIke0 >= N1, 10000, 'the server\'s Main Modes counted as nat.unknown_ike');
  const pingsR = await Promise.all(tp.clients.map(async (ns) => { const p = ns.spawn(['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', '10.2.0.1']); await p.exited; return pingResult(p); }));
  const responders = await Promise.all(clients.map(async (c) => (await c.sas()).filter((x) => !x.initiator).length));
  diag(`reauthentication: clients' new Main Modes mapped; the server's ${(await sl.counter('nat.unknown_ike')) - unknownIke0} Main Mode packets refused (nat.unknown_ike); IKE SAs the clients answered [${responders.join(',')}]; pings ${pingsR.map((p) => `${p.received}/${p.sent}`).join(' ')}; counters ${await natCounters(sl)}`);
  assert.deepEqual(responders, responders0, 'no client received the server\'s new Main Mode');
  for (const [k, p] of pingsR.entries()) assert.equal(p.received, p.sent, `client ${k + 1}: pings answered after the reauthentications`);
  assert.equal(await sl.counter('nat.ambiguous'), 0, 'no ambiguous packet dropped');
  await Promise.all([...clients, sv].map((c) => c.stop()));
  await sl.stop();
});

/**
 * A new IKE SA whose host stays silent on it: the server speaks first. Two clients rekey their IKE
 * SAs (client-initiated CREATE_CHILD_SA; the new IKE SPIs travel encrypted), 3 s apart, each alone
 * in its learning window; neither sends anything on its new IKE SA. Then the server rekeys client
 * 1's CHILD_SA: its CREATE_CHILD_SA request is the first cleartext sight of client 1's new IKE SPIs.
 * Found with this test (sluice 1c95360): both hosts stay owed an IKE SA (the windows end without a
 * packet on the new SPIs), so the request is ambiguous, held and dropped (nat.ambiguous) on every
 * retransmission; the server gives up after its retransmissions and deletes the IKE SA. The host
 * speaking first (a client-initiated CHILD_SA rekey) is learned (nat.learned_outbound) — that case is
 * in the 8-client rekeys above and in nat-esp.test.ts.
 */
test('strongSwan: 2 clients rekey their IKE SAs 3 s apart and stay silent on them; the server then rekeys one CHILD_SA over the new IKE SA: delivered, rekeyed, 0 misrouted', {
  skip: skip(), timeout: 120000,
  todo: 'issue 10: the server\'s first message on a silent host\'s new IKE SA is ambiguous while another host is owed an IKE SA too; dropped until the server gives up',
}, async (t) => {
  const { tp, sl: slOrNull, sv, clients } = await setup(t, 'sslike', 2, '');
  const sl = slOrNull!;
  const diag = (s: string): void => t.diagnostic(s);
  diag(`load before start ${load()}`);
  await sv.load(ikev2PskServer({ local: SERVER, pool: '10.99.0.0/24', localTs: '10.2.0.0/24' }));
  await Promise.all(clients.map((c, k) => c.load(ikev2PskClient({ id: `c${k + 1}@lab`, local: hostOf(k), remote: SERVER, remoteTs: '10.2.0.0/24', startAction: 'start' }))));
  await until(() => clients.every((c) => charonLogStats(c.log()).childEstablished !== null), 30000, 'both clients up');
  const ping = async (n: number): Promise<PingResult[]> => (await Promise.all(tp.clients.map(async (ns) => {
    const p = ns.spawn(['ping', '-n', '-c', String(n), '-i', '0.2', '-W', '2', '10.2.0.1']);
    await p.exited;
    return pingResult(p);
  })));
  const first = await ping(2);
  assert.ok(first.every((p) => p.received === p.sent), `pings before the rekeys ${JSON.stringify(first)}`);
  const spis0 = await Promise.all(clients.map(async (c) => inboundSpis(await c.sas())));

  for (const c of clients) {
    const before = (await c.sas())[0]!.spiI;
    await c.rekeyIke('c');
    await until(async () => (await c.sas()).some((s) => s.state === 'ESTABLISHED' && s.spiI !== before), 15000, `${c.name} IKE SA rekeyed`);
    await sleep(3000);
  }
  diag(`IKE SAs rekeyed; counters ${await natCounters(sl)}; sa-learning ${JSON.stringify(await saLearning(sl))}`);

  const svSas = await sv.sas();
  const child = svSas.find((s) => s.remoteId === 'c1@lab')?.children.find((c) => c.state === 'INSTALLED');
  assert.ok(child, `server's CHILD_SA with c1@lab (${JSON.stringify(svSas)})`);
  const retx0 = charonLogStats(sv.log()).retransmits;
  const dumps = ['wan0', 'br0'].map((dev) => tp.gw.spawn(['tcpdump', '-tt', '-nli', dev, '--immediate-mode', 'udp port 4500 and udp[8:4] == 0']));
  await Promise.all(dumps.map((d) => d.waitFor(/listening on/)));
  const t0 = Date.now();
  await sv.rekeyChildId(child.uniqueId);
  const done = await until(async () => installedSpis(await clients[0]!.sas()).every((x) => !spis0[0]!.includes(x)), 12000, 'client 1 CHILD_SA rekeyed by the server')
    .then(() => true, () => false);
  const learning = await saLearning(sl);
  diag(`server-initiated rekey over the new IKE SA: ${done ? `done in ${Date.now() - t0} ms` : 'not done in 12 s'}; server retransmissions ${charonLogStats(sv.log()).retransmits - retx0}; counters ${await natCounters(sl)}; sa-learning ${JSON.stringify(learning)}`);
  await sleep(200);
  for (const d of dumps) { await d.stop('SIGINT'); diag(`IKE on ${d.cmd[3]} during the server's rekey:\n${d.stdout.trim()}`); }
  if (!done) diag(`server log:\n${sv.log().split('\n').filter((l) => /CREATE_CHILD_SA request|retransmit|giving up/.test(l)).slice(-8).join('\n')}`);
  const after = await ping(3);
  diag(`pings after ${JSON.stringify(after)}; load ${load()}`);
  assert.ok(done, 'client 1\'s CHILD_SA rekeyed by the server within 12 s');
  assert.equal(await sl.counter('nat.ambiguous'), 0, 'no ambiguous packet dropped');
  assert.ok(after.every((p) => p.received === p.sent), 'pings after the rekey answered');
  const list = await saList(sl);
  assertOwnSpis(list, await Promise.all(clients.map(async (c, k) => [...new Set([...spis0[k]!, ...inboundSpis(await c.sas())])])));
  await Promise.all([...clients, sv].map((c) => c.stop()));
  await sl.stop();
});

/**
 * Answers that come late. Two clients connect and stay silent (both owed an inbound SA). The
 * server's charon is stopped (SIGSTOP, our own PID) for a while — as a far or busy server answers
 * late: client 1 pings, client 2 pings `bAtMs` later, the server resumes `resumeAfterMs` after that
 * and answers client 1 first, then client 2.
 * Found with the first case (sluice e1da7c6, probe_ms 300, deterministic): client 1's probe expired,
 * client 2's probe took the server's late answer to client 1 (learned=reply) and client 1 got client
 * 2's SPI by elimination — both mappings swapped, every ping of both lost. Fixed on main by 0f3a775
 * (probe_ms 1000, clearing). The second case is the limit docs/nat.md lists under "What still needs
 * luck": a single packet answered more than probe_ms later, while another host probes.
 */
async function lateAnswer(t: TestContext, prefix: string, aCount: number, bAtMs: number, resumeAfterMs: number): Promise<void> {
  const { tp, sl: slOrNull, sv, clients } = await setup(t, prefix, 2, '');
  const sl = slOrNull!;
  const diag = (s: string): void => t.diagnostic(s);
  diag(`load before start ${load()}`);
  await sv.load(ikev2PskServer({ local: SERVER, pool: '10.99.0.0/24', localTs: '10.2.0.0/24' }));
  await Promise.all(clients.map((c, k) => c.load(ikev2PskClient({ id: `c${k + 1}@lab`, local: hostOf(k), remote: SERVER, remoteTs: '10.2.0.0/24', startAction: 'start' }))));
  await until(() => clients.every((c) => charonLogStats(c.log()).childEstablished !== null), 30000, 'both clients up');
  await sleep(1000);
  diag(`sa-learning before the pings ${JSON.stringify(await saLearning(sl))}`);
  const pid = sv.proc.pid;
  process.kill(pid, 'SIGSTOP');
  let pa: Proc;
  let pb: Proc;
  try {
    pa = tp.clients[0]!.spawn(['ping', '-n', '-c', String(aCount), '-i', '0.5', '-W', '4', '10.2.0.1']);
    await sleep(bAtMs);
    pb = tp.clients[1]!.spawn(['ping', '-n', '-c', '5', '-i', '0.5', '-W', '3', '10.2.0.1']);
    await sleep(resumeAfterMs);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await Promise.all([pa.exited, pb.exited]);
  const pings = [pa, pb].map(pingResult);
  const list = await saList(sl);
  const clientSas = await Promise.all(clients.map((c) => c.sas()));
  diag(`pings ${pings.map((p) => `${p.received}/${p.sent}`).join(' ')}; counters ${await natCounters(sl)}`);
  diag(`sluice sa: ${list.map((g) => `${g.host} in ${g.esp_in.map((e) => `${e.spi}(${e.packets},${e.learned})`).join(',')}`).join(' | ')}`);
  diag(`charon inbound SPIs: ${clientSas.map((sas, k) => `${hostOf(k)} ${inboundSpis(sas).join(',')}`).join(' | ')}; load ${load()}`);
  assertOwnSpis(list, clientSas.map(inboundSpis));
  for (const [k, p] of pings.entries()) assert.equal(p.received, p.sent, `client ${k + 1}: ${p.received}/${p.sent} pings answered`);
  await Promise.all([...clients, sv].map((c) => c.stop()));
  await sl.stop();
}

test('strongSwan: the server answers client 1 0.5 s late while client 2 starts; client 1 keeps sending: 0 misrouted', { skip: skip(), timeout: 90000 }, async (t) => {
  await lateAnswer(t, 'ssllate', 5, 450, 50);
});

test('strongSwan: the server answers client 1\'s only packet 1.6 s late (> probe_ms) while client 2 probes: 0 misrouted', {
  skip: skip(), timeout: 90000,
  todo: 'docs/nat.md "What still needs luck": an answer later than probe_ms after the packet that drew it goes to the probing host; both mappings swap',
}, async (t) => {
  await lateAnswer(t, 'ssllate2', 1, 1500, 100);
});
