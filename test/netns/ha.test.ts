/**
 * HA failover with real parts: two gateways running sluice and keepalived (VRRPv3 on the LAN
 * bridge moving the LAN gateway address and the public address), raw-ESP clients (scapy, real
 * AES-CBC/HMAC ESP checked by decryption) and strongSwan IKEv2 clients (charon, kernel-libipsec,
 * ESP-in-UDP) with traffic flowing. Five times: kill -9 the active's sluice and take its links down;
 * keepalived moves the addresses and promotes the other; every client's traffic resumes on the
 * replicated mappings without any IKE message; the killed gateway comes back as a standby, gets a
 * full resync, and is the next one killed (so failback is exercised the same way).
 *
 * SLUICE_TEST_WORKERS=N runs both gateways with `workers: N` (test/kit/workers.ts; a manual run,
 * not part of scripts/test.sh's workers pass). Then, before each kill, ESP with a replicated SPI is
 * framed straight to the standby (as traffic reaching it before keepalived's notify ran would be):
 * its worker threads must hand every packet to the NAT owner thread, which drops it
 * (nat.ha_standby), and translate none; and after each promotion the workers' fast path must carry
 * the resumed traffic in both directions.
 *
 * The outage per failover (last reply before, first reply after, worst client) is printed as a
 * diagnostic line `HA-OUTAGE ...` for bench/RESULTS.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { labSkipReason, until, type Namespace, type Proc } from '../../src/lab/lab';
import { Charon, charonLogStats, ikev2PskClient, ikev2PskServer, ipsecSkipReason } from '../../src/lab/ipsec';
import { ESP_PEER, PY, runClients, startServer, serverResult, summary, type NatTopo } from './fixtures/nat-lab';
import { espIn, espToGateway, haStatus, haTopo, natWorkers, ns4, queueCounts, startKeepalived, startSluice, type Gateway, type HaTopo } from './fixtures/ha-lab';
import { TEST_WORKERS } from '../kit/workers';

const N_RAW = Number(process.env.SLUICE_HA_RAW ?? 4);
const N_SWAN = Number(process.env.SLUICE_HA_SWAN ?? 3);
const FAILOVERS = Number(process.env.SLUICE_HA_FAILOVERS ?? 5);
const INTERVAL = 0.05;
const PING_INTERVAL = 0.05;
const SWAN_SERVER = '203.0.113.11';
/** ESP packets framed to the standby before each kill. */
const PROBES = 20;

function skip(): string | false {
  const r = labSkipReason() || (N_SWAN > 0 && ipsecSkipReason());
  if (r) return r;
  try { execFileSync('keepalived', ['--version'], { stdio: 'ignore' }); } catch { return 'keepalived is not installed (scripts/setup.sh installs it)'; }
  if (!existsSync(PY) || !existsSync(ESP_PEER)) return 'python3-scapy / esp_peer.py missing';
  if (!existsSync(resolve(__dirname, '../../src/io/nfqueue.js'))) return 'NFQUEUE binding not built';
  return false;
}

/** Replies of `ping -D`: [epoch seconds, icmp_seq]. */
function pingReplies(p: Proc): [number, number][] {
  const out: [number, number][] = [];
  for (const m of p.stdout.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)/gm)) out.push([Number(m[1]), Number(m[2])]);
  return out;
}

/** Send times of the answered sequence numbers of a raw client (t0 + seq * interval). */
function answeredTimes(r: { sent: number; missing: number[]; t0?: number }): number[] {
  const miss = new Set(r.missing);
  const out: number[] = [];
  for (let k = 0; k < r.sent; k++) if (!miss.has(k)) out.push(((r.t0 ?? 0) + k * INTERVAL) * 1000);
  return out;
}

/**
 * The outage a failover at `kill` caused: the longest silence between two consecutive replies that
 * ends after the kill (and before the next one) and starts within 10 s of it (a reply already in flight at the kill can land
 * just after it; the silence that follows is the outage). Times in ms.
 */
function outage(times: number[], kill: number, next = Infinity): number | null {
  const x = [...times].sort((a, b) => a - b);
  let best: number | null = null;
  for (let i = 0; i + 1 < x.length; i++) {
    if (x[i + 1]! <= kill || x[i + 1]! > next || x[i]! >= kill + 10_000) continue;
    const gap = x[i + 1]! - x[i]!;
    if (best === null || gap > best) best = gap;
  }
  return best;
}

const median = (v: number[]): number => { const s = [...v].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN; };

test(`HA: ${FAILOVERS} failovers between two sluice gateways under keepalived${TEST_WORKERS > 1 ? ` (workers: ${TEST_WORKERS})` : ''}; ${N_RAW} raw-ESP + ${N_SWAN} strongSwan clients resume without IKE`, { skip: skip(), timeout: 600_000 }, async (t) => {
  const MID = N_SWAN > 0 && process.env.SLUICE_HA_MIDNEG !== '0';
  const tp: HaTopo = await haTopo('ha', N_RAW + N_SWAN + (MID ? 1 : 0));
  t.after(() => tp.lab.cleanup());
  const [A, B] = tp.gws;
  const fail = async (e: unknown): Promise<never> => {
    for (const g of tp.gws) {
      t.diagnostic(`gw ${g.name} sluice: ${g.sluice?.proc.output.slice(-3000) ?? '-'}`);
      t.diagnostic(`gw ${g.name} keepalived: ${g.keepalived?.output.slice(-1500) ?? '-'}`);
      try { t.diagnostic(`gw ${g.name} notify: ${tp.lab.read(`notify-${g.name}.log`)}`); } catch { /* none */ }
    }
    throw e;
  };

  // Both start as standbys (role auto); keepalived elects A (priority 150) and its notify promotes it.
  await startSluice(tp, A);
  await startSluice(tp, B);
  await startKeepalived(tp, A, 150);
  await until(async () => (await haStatus(A)).role === 'active', 20000, 'A promoted by keepalived').catch(fail);
  await startKeepalived(tp, B, 100);
  await until(async () => (await haStatus(B)).stream?.last_resync, 20000, 'B resynced from A').catch(fail);
  t.diagnostic(`A active, B standby with a resync (workers: ${TEST_WORKERS}; kernel rules from ${A.rulesFrom})`);

  // strongSwan clients (server in its own namespace on the WAN switch: esp_peer binds UDP 500 too).
  const swanClients = tp.clients.slice(N_RAW, N_RAW + N_SWAN);
  let pingers: Proc[] = [];
  let charons: Charon[] = [];
  let srvCharon: Charon | null = null;
  let sv2ns: Namespace | null = null;
  if (N_SWAN > 0) {
    const sv2 = ns4(tp.lab, 'sv2');
    sv2ns = sv2;
    await tp.lab.link(sv2, 'eth0', tp.sw, 'sv2');
    await tp.sw.sh('ip link set sv2 master brw && ip link set sv2 up');
    await sv2.sh(`ip addr add ${SWAN_SERVER}/24 dev eth0 && ip addr add 10.2.0.1/24 dev lo`);
    const srv = await Charon.start(tp.lab, sv2, 'sv');
    await srv.load(ikev2PskServer({ local: SWAN_SERVER, pool: '10.99.0.0/24', localTs: '10.2.0.0/24' }));
    charons = await Promise.all(swanClients.map(async (ns, k) => {
      await ns.sh('ip route add unreachable 10.2.0.0/24');
      const c = await Charon.start(tp.lab, ns, `c${N_RAW + k + 1}`);
      await c.load(ikev2PskClient({ id: `c${N_RAW + k + 1}@lab`, local: `192.168.1.${11 + N_RAW + k}`, remote: SWAN_SERVER, remoteTs: '10.2.0.0/24' }));
      return c;
    }));
    // One at a time: learning is not what this test is about.
    for (const c of charons) await c.initiate('c').catch(fail);
    pingers = swanClients.map((ns) => ns.spawn(['ping', '-D', '-n', '-i', String(PING_INTERVAL), '-W', '1', '10.2.0.1']));
    await until(() => pingers.every((p) => pingReplies(p).length > 5), 20000, 'pings through every tunnel').catch(fail);
    charons.push(srv);
    srvCharon = srv;
  }
  const ikeSent = (c: Charon): number => (c.log().match(/sending packet/g) ?? []).length;
  const ikeBefore = charons.map(ikeSent);
  const logAt = charons.map((c) => c.log().length);

  // Raw-ESP clients: IKE (INIT + AUTH) once at their start, then ESP every INTERVAL until the end.
  const count = Math.round((20 + FAILOVERS * 14) / INTERVAL);
  const rawTp = { lab: tp.lab, gw: A.ns, sv: tp.sv, clients: tp.clients.slice(0, N_RAW) } as unknown as NatTopo;
  const server = N_RAW > 0 ? startServer(rawTp, Math.ceil(count * INTERVAL) + 30) : null;
  const rawDone = N_RAW > 0 ? runClients(rawTp, count, () => ['--interval', String(INTERVAL), '--at', String(Date.now() / 1000)], (count * INTERVAL + 120) * 1000) : Promise.resolve([]);
  const rawClientsEnd = Date.now() + count * INTERVAL * 1000;

  const hosts = tp.clients.slice(0, N_RAW + N_SWAN).map((_, i) => `192.168.1.${11 + i}`);
  /** Every client's inbound ESP has passed the gateway since its (re)start or promotion. */
  const flowing = async (g: Gateway): Promise<boolean> => {
    const m = await espIn(g);
    return hosts.every((h) => (m.get(h) ?? []).some((e) => e.packets > 0));
  };
  await until(() => flowing(A), 60000, 'every client flowing through A').catch(fail);
  await until(async () => (await haStatus(B)).nat.records === (await haStatus(A)).nat.records, 10000, 'B holds what A holds').catch(fail);

  /**
   * Workers mode: ESP with a replicated SPI (a raw client's, or any when there is none) framed
   * straight to the standby: every packet handed to the owner by the workers, translated by none,
   * dropped as nat.ha_standby. Returns the standby's nat.ha_standby count afterwards.
   */
  const standbyDrops = async (g: Gateway): Promise<number> => {
    const spiText = N_RAW > 0 ? (await espIn(g)).get(hosts[0]!)?.[0]?.spi : undefined;
    assert.ok(N_RAW === 0 || spiText, `standby ${g.name} holds raw client 1's inbound ESP SA`);
    const spi = spiText ? Number.parseInt(spiText.replace(/^0x/, ''), 16) : 0x5a5a0001;
    const before = await g.sluice!.counter('nat.ha_standby');
    const w0 = await natWorkers(g);
    await espToGateway(tp, g, spi, PROBES);
    const after = await until(async () => { const v = await g.sluice!.counter('nat.ha_standby'); return v >= before + PROBES ? v : 0; },
      5000, `standby ${g.name} dropped the ${PROBES} ESP packets framed to it (nat.ha_standby)`);
    const w1 = await natWorkers(g);
    assert.ok(w0 && w1, 'workers mode: the NAT reports its workers\' counts');
    assert.equal(w1.in + w1.out, w0.in + w0.out, `standby ${g.name}: no worker translated anything`);
    assert.ok(w1.forwarded - w0.forwarded >= PROBES, `standby ${g.name}: the workers handed every NAT packet to the owner (${w1.forwarded - w0.forwarded} of ${PROBES})`);
    return after;
  };

  const kills: number[] = [];
  let active = A, standby = B;
  for (let i = 0; i < FAILOVERS; i++) {
    const want = (await haStatus(active)).nat.records;
    await until(async () => (await haStatus(standby)).nat.records === want, 10000, `standby ${standby.name} in sync`).catch(fail);
    // Only in workers mode: the default run stays what scripts/test.sh has always timed.
    const standbyDropped = TEST_WORKERS > 1 ? await standbyDrops(standby).catch(fail) : await standby.sluice!.counter('nat.ha_standby');
    const t0 = Date.now();
    kills.push(t0);
    await active.sluice!.kill9();
    await active.ns.sh('ip link set lan0 down && ip link set wan0 down');
    await until(async () => (await haStatus(standby)).role === 'active', 20000, `${standby.name} promoted`).catch(fail);
    const promotedMs = Date.now() - t0;
    await until(() => flowing(standby), 30000, `every client resumed through ${standby.name}`).catch(fail);
    const resumedMs = Date.now() - t0;
    const st = await haStatus(standby);
    // Dropped by the new active while it still was a standby (traffic that arrived before the notify ran).
    const windowDrops = (await standby.sluice!.counter('nat.ha_standby')) - standbyDropped;
    let fast = '';
    if (TEST_WORKERS > 1) {
      // It was a standby since it started, so its workers' fast-path counts are all from after the promotion.
      const w = (await until(async () => { const c = await natWorkers(standby); return c && c.in > 0 && c.out > 0 ? c : null; }, 10000,
        `${standby.name}'s workers translating on their fast path again (inbound and outbound)`).catch(fail))!;
      fast = `; workers: fast path in ${w.in} out ${w.out}, forwarded ${w.forwarded}, queues ${await queueCounts(standby)}`;
    }
    t.diagnostic(`failover ${i + 1}: ${active.name} -> ${standby.name}: promoted after ${promotedMs} ms (rebuild ${st.last_promote_ms.toFixed(1)} ms, ${st.last_promote_records} records), every client seen again within ${resumedMs} ms; ${windowDrops} NAT packets dropped before its promotion${fast}`);
    // The killed gateway comes back: links up, sluice restarted (auto: standby), full resync.
    await active.ns.sh('ip link set lan0 up && ip link set wan0 up');
    await startSluice(tp, active);
    await until(async () => { const s = await haStatus(active); return s.role === 'standby' && s.stream?.connected && s.stream.last_resync; }, 20000, `${active.name} resynced`).catch(fail);
    [active, standby] = [standby, active];
  }
  assert.ok(Date.now() < rawClientsEnd, `the failovers ran past the raw clients' traffic (${Math.round((Date.now() - rawClientsEnd) / 1000)} s): raise count`);
  const ikeAfter = charons.map(ikeSent);
  const newIke = charons.map((c, k) => c.log().slice(logAt[k]).split('\n').filter((l) => /sending packet|received packet|initiating|retransmit/.test(l)));

  // A failover in the middle of a negotiation (docs/ha.md): a new strongSwan client's IKE_AUTH
  // response is lost in the failover (the server's IKE on UDP 4500 is dropped at the server until the
  // standby is promoted: without netem this is how the lab makes "in flight" deterministic). The
  // old active had counted the exchange (the host is owed an SA; replicated in its IKE record);
  // held packets and windows are not replicated. Cost: the client retransmits IKE_AUTH, then the new
  // active learns the new inbound SPI (elimination) and the tunnel carries traffic.
  if (MID) {
    const ns = tp.clients[N_RAW + N_SWAN]!;
    const sv2 = sv2ns!;
    await ns.sh('ip route add unreachable 10.2.0.0/24');
    const c = await Charon.start(tp.lab, ns, 'mid');
    await c.load(ikev2PskClient({ id: 'mid@lab', local: `192.168.1.${11 + N_RAW + N_SWAN}`, remote: SWAN_SERVER, remoteTs: '10.2.0.0/24' }));
    const BLOCK = 'OUTPUT -p udp --sport 4500 -m u32 --u32 "0>>22&0x3C@8=0" -j DROP';
    await sv2.sh(`iptables -A ${BLOCK}`);
    const t0 = Date.now();
    const init = c.initiate('c', 60);
    await until(() => /sending packet: from \S+\[4500\]/.test(c.log()), 10000, 'mid client sent IKE_AUTH');
    await until(() => srvCharon!.log().split('\n').some((l) => /IKE_AUTH response 1/.test(l) && l.includes('generating')), 10000, 'server answered IKE_AUTH (dropped)');
    const killAt = Date.now();
    await active.sluice!.kill9();
    await active.ns.sh('ip link set lan0 down && ip link set wan0 down');
    await until(async () => (await haStatus(standby)).role === 'active', 20000, `${standby.name} promoted`).catch(fail);
    await sv2.sh(`iptables -D ${BLOCK}`);
    await init.catch(fail);
    const upMs = Date.now() - t0;
    const ls = charonLogStats(c.log());
    const msgs = c.log().split('\n').filter((l) => /sending packet|retransmit \d+ of request|parsed \S+ (request|response)/.test(l)).map((l) => l.replace(/^(\S+) \d+\[\w+\] /, '$1 '));
    const ping = await ns.exec(['ping', '-n', '-c', '5', '-i', '0.2', '-W', '2', '10.2.0.1'], { allowFail: true });
    const got = Number(/(\d+) received/.exec(ping.stdout)?.[1] ?? 0);
    t.diagnostic(`HA-MIDNEG: IKE_AUTH answered and lost, active killed ${killAt - t0} ms after initiating; tunnel up after ${upMs} ms with ${ls.retransmits} retransmits; pings ${got}/5; charon: ${msgs.join(' | ')}`);
    assert.ok(got > 0, 'the tunnel negotiated across the failover carries traffic');
    await c.stop();
    [active, standby] = [standby, active];
  }

  const raw = await rawDone;
  const srvRes = server ? await serverResult(server) : null;
  for (const p of pingers) await p.stop('SIGINT');
  t.diagnostic(`raw clients: ${summary(raw)}; server ${JSON.stringify(srvRes && { esp: srvRes.esp, bad: srvRes.bad, ike: srvRes.ike, init: srvRes.init })}`);

  // Outages: raw clients from runs of unanswered sequence numbers (one run per failover, in order),
  // ping clients from gaps between reply timestamps around each kill.
  const perFailover: number[][] = kills.map(() => []);
  raw.forEach((r, k) => {
    const rt = r as typeof r & { t0?: number };
    assert.ok(rt.t0, 'esp_peer reports its send start (t0)');
    const times = answeredTimes(rt);
    kills.forEach((kt, i) => {
      const o = outage(times, kt, kills[i + 1]);
      assert.ok(o !== null, `raw client ${k + 1}: replies before and after failover ${i + 1}`);
      perFailover[i]!.push(o);
    });
    assert.equal(r.misrouted, 0, `raw client ${k + 1}: nothing misrouted`);
  });
  pingers.forEach((p, k) => {
    const times = pingReplies(p).map(([ts]) => ts * 1000);
    kills.forEach((kt, i) => {
      const o = outage(times, kt, kills[i + 1]);
      assert.ok(o !== null, `ping client ${k + 1}: replies before and after failover ${i + 1}`);
      perFailover[i]!.push(o);
    });
  });
  const worst = perFailover.map((v) => Math.max(...v));
  t.diagnostic(`HA-OUTAGE per failover (worst client, ms): ${worst.map((w) => w.toFixed(0)).join(' ')}; median ${median(worst).toFixed(0)} ms, worst ${Math.max(...worst).toFixed(0)} ms; all clients: ${JSON.stringify(perFailover.map((v) => v.map((x) => Math.round(x))))}`);

  // No IKE message from any strongSwan peer (clients or server) during the five failovers.
  t.diagnostic(`charon IKE lines during the failovers: ${JSON.stringify(newIke.map((l, k) => `${charons[k]!.name}: ${l.length}${l.length ? ` e.g. ${l.slice(0, 3).join(' / ')}` : ''}`))}`);
  if (newIke.some((l) => l.length > 0)) for (const [k, c] of charons.entries()) t.diagnostic(`${c.name} log since traffic started:\n${c.log().slice(logAt[k]).split('\n').slice(0, 30).join('\n')}`);
  t.diagnostic(`kills at ${kills.map((k) => new Date(k).toISOString()).join(' ')}`);
  assert.deepEqual(ikeAfter, ikeBefore, 'IKE messages sent by charon during the failovers');
  if (srvRes) assert.equal(srvRes.init, N_RAW, 'raw clients: one IKE_SA_INIT each, none after');
  for (const [k, r] of raw.entries()) assert.ok(r.good > 0.5 * r.sent, `raw client ${k + 1}: ${r.good}/${r.sent} answered`);
  for (const g of tp.gws) { try { t.diagnostic(`notify ${g.name}:\n${tp.lab.read(`notify-${g.name}.log`)}`); } catch { /* none */ } }
  const fin = await haStatus(active);
  t.diagnostic(`final active ${active.name}: ${JSON.stringify({ counters: fin.counters, rejected: fin.rejected })}`);
  if (TEST_WORKERS > 1) t.diagnostic(`final active ${active.name}'s workers: ${JSON.stringify(await natWorkers(active))}; queues ${await queueCounts(active)}`);
  assert.deepEqual(Object.values(fin.rejected).filter((v) => v !== 0), [], 'no replication message rejected');
});
