/**
 * Real strongSwan peers against sluice's SPI learning (issue 10): the situations scripted peers
 * cannot fake, with charon's own timers and retransmissions.
 *
 *   c1..cN 192.168.1.11.. (vips 10.99.0.x) ─ br0 [gw + sluice] wan0 203.0.113.1 ─ 203.0.113.10 [sv, 10.2.0.1]
 *
 * 1. 3 IKEv1 clients (Main Mode + Mode Config + Quick Mode) with pings flowing throughout:
 *    client-initiated Quick Mode rekeys of all 3 at once, then a server-side rekey of all 3; then
 *    silent Quick Mode rekeys of all 3 and pings 10 s later; then Main Mode reauthentication from
 *    the clients (mapped to their hosts) and from the server (refused: nat.unknown_ike). Same checks.
 * 2. Late answers (server stopped with SIGSTOP): 0.5 s late while the host keeps sending (a misroute
 *    at e1da7c6, fixed since); a single packet answered later than probe_ms (todo: the known limit).
 * 3. Known gaps, kept as `todo` (they run, report, and do not fail the suite; drop the todo when
 *    fixed): the server speaking first on a new IKE SA while another host is owed one too; the late
 *    single answer of 3 (both in docs/nat.md, "What still needs luck").
 *
 * The 8 IKEv2 clients at once and their MASQUERADE control are in nat-strongswan-learning.test.ts;
 * both share test/kit/strongswan-learning.ts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, until, type Proc } from '../../src/lab/lab';
import { charonLogStats, ikev1PskClient, ikev1PskServer, ikev2PskClient, ikev2PskServer } from '../../src/lab/ipsec';
import { SERVER } from './fixtures/nat-lab';
import { skip, type SaRow, saList, saLearning, natCounters, load, hostOf, type PingResult, pingResult, setup, assertOwnSpis, inboundSpis, installedSpis, silentRekeyThenPing } from '../kit/strongswan-learning';

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

/** Two strongSwan IKEv2 clients (start_action=start) behind the gateway, both CHILD_SAs up. */
async function twoIkev2ClientsUp(t: TestContext, prefix: string) {
  const { tp, sl, sv, clients } = await setup(t, prefix, 2, '');
  const diag = (s: string): void => t.diagnostic(s);
  diag(`load before start ${load()}`);
  await sv.load(ikev2PskServer({ local: SERVER, pool: '10.99.0.0/24', localTs: '10.2.0.0/24' }));
  await Promise.all(clients.map((c, k) => c.load(ikev2PskClient({ id: `c${k + 1}@lab`, local: hostOf(k), remote: SERVER, remoteTs: '10.2.0.0/24', startAction: 'start' }))));
  await until(() => clients.every((c) => charonLogStats(c.log()).childEstablished !== null), 30000, 'both clients up');
  return { tp, sl: sl!, sv, clients, diag };
}

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
  const { tp, sl, sv, clients, diag } = await twoIkev2ClientsUp(t, 'sslike');
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
  const { tp, sl, sv, clients, diag } = await twoIkev2ClientsUp(t, prefix);
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
