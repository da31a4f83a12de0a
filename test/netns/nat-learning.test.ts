/**
 * SPI learning that survives idle hosts, impatient clients and quiet directions (issue 10), with
 * scripted IPsec hosts (fixtures/learn_peer.py: real retransmission schedules, real ESP, raw or
 * NAT-T) behind one public address:
 *
 *   h1..h8 192.168.1.11.. ─ br0 [gw + sluice] wan0 203.0.113.1 ─ 203.0.113.10 [server]
 *
 * Every delivered ESP packet is decrypted by its receiver with its own keys: `misrouted` counts
 * packets for another host's SPI (or text) that reached a host. The strongSwan runs of the same
 * situations are in nat-strongswan-learning.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SluiceProcess } from '../../src/lab/sluice';
import { natTopo, nonZero, sluiceSkip, startSluice } from './fixtures/nat-lab';
import { IMPATIENT, scenario, type HostResult } from './fixtures/learn-lab';

function brief(rs: (HostResult | null)[]): string {
  return rs.map((r, k) => r && `h${k + 1}: ike ${r.ike_ok ? `${r.ike_ms}ms` : 'FAILED'} retx ${r.ike_retx} good ${r.good}/${r.sent}` +
    ` first ${r.first_reply_ms}ms${r.b_sent ? ` b ${r.b_good}/${r.b_sent} first ${r.b_first_reply_ms}ms` : ''}` +
    `${r.pushes ? ` pushes ${r.pushes}` : ''} misrouted ${r.misrouted} bad ${r.bad}`).filter(Boolean).join('; ');
}

type Learning = { owed: { host: string; owed: number }[]; pending: unknown[]; held: number }[];

async function report(t: { diagnostic: (s: string) => void }, sl: SluiceProcess, rs: (HostResult | null)[], sv: Record<string, number>): Promise<void> {
  t.diagnostic(brief(rs));
  t.diagnostic(`server ${JSON.stringify(sv)}`);
  t.diagnostic(`counters: ${await nonZero(sl)}`);
  t.diagnostic(`learning: ${JSON.stringify(await sl.request('stage', { stage: 'nat', name: 'sa-learning', args: {} }) as Learning)}`);
}

for (const mode of ['IKEv2', 'IKEv1', 'NAT-T', 'mixed'] as const) {
  test(`8 ${mode} hosts connect at the same instant, retransmit at 0.5/1/1.5/2 s, stay silent 10 s: IKE with <= 1 retransmission, first reply < 1 s, 0 misrouted`, { skip: sluiceSkip() }, async (t) => {
    const tp = await natTopo({ IKEv2: 'nl2', IKEv1: 'nl1', 'NAT-T': 'nlt', mixed: 'nlm' }[mode], 8);
    t.after(() => tp.lab.cleanup());
    const { sl } = await startSluice(tp, (s) => t.diagnostic(s));
    const flags = (i: number): string[] => {
      const m = mode === 'mixed' ? (['IKEv2', 'IKEv1', 'NAT-T'] as const)[i % 3] : mode;
      return m === 'IKEv1' ? ['--v1'] : m === 'NAT-T' ? ['--natt'] : [];
    };
    const { rs, sv } = await scenario(tp, ['17'], (i) => [...flags(i), ...IMPATIENT, '--idle', '10', '--count', '5',
      '--interval', '0.2', '--until', '16']);
    await report(t, sl, rs, sv);
    for (const [k, r] of rs.entries()) {
      const h = `host ${k + 1}`;
      assert.equal(r!.ike_ok, 1, `${h}: IKE completed`);
      assert.ok(r!.ike_retx <= 1, `${h}: ${r!.ike_retx} IKE retransmissions`);
      assert.equal(r!.misrouted, 0, `${h}: another host's packets arrived`);
      assert.equal(r!.bad, 0, `${h}: undecryptable ESP`);
      assert.ok(r!.first_reply_ms >= 0 && r!.first_reply_ms < 1000, `${h}: first reply after ${r!.first_reply_ms} ms`);
      assert.deepEqual(r!.missing, [], `${h}: replies missing`);
    }
    assert.equal(await sl.counter('nat.ambiguous'), 0);
  });
}

test('8 hosts rekey at the same instant (IKEv2 CREATE_CHILD_SA, IKEv1 Quick Mode, IKE SA rekeys), silent 10 s, then traffic on the new SAs both ways, 0 misrouted', { skip: sluiceSkip() }, async (t) => {
  const tp = await natTopo('nlrk', 8);
  t.after(() => tp.lab.cleanup());
  const { sl } = await startSluice(tp, (s) => t.diagnostic(s));
  const rekey = 4;
  // Hosts 1-3: IKEv2 CHILD_SA rekeys; 4-6: IKEv1 Quick Mode rekeys; 7-8: IKEv2 IKE SA rekeys (the
  // host then speaks first on the new IKE SA, as a rekey initiator that deletes the old one does).
  const kind = (i: number): string[] => i <= 3 ? ['--rekey-at', String(rekey)] : i <= 6 ? ['--v1', '--rekey-at', String(rekey)] : ['--ike-rekey-at', String(rekey)];
  const { rs, sv } = await scenario(tp, ['18'], (i) => [...kind(i), '--count', '5', '--interval', '0.1',
    '--after-rekey-idle', '10', '--until', '17']);
  await report(t, sl, rs, sv);
  for (const [k, r] of rs.entries()) {
    const h = `host ${k + 1}`;
    assert.equal(r!.misrouted, 0, `${h}: another host's packets arrived`);
    assert.equal(r!.bad, 0);
    assert.deepEqual(r!.missing, [], `${h}: replies missing before the rekey`);
    assert.equal(r!.b_sent, 5, `${h}: the rekey completed and traffic followed`);
    assert.deepEqual(r!.b_missing, [], `${h}: replies missing on the new SA`);
    if (k >= 6) assert.equal(r!.ike_new_ok, 1, `${h}: the new IKE SA answered`);
  }
  const list = await sl.request('stage', { stage: 'nat', name: 'sa-list', args: {} }) as { host: string; esp_in: { spi: string }[] }[];
  for (let i = 1; i <= 6; i++) {
    const g = list.find((x) => x.host === `192.168.1.${10 + i}`);
    assert.ok(g?.esp_in.some((e) => parseInt(e.spi, 16) === (0x3000 | i)), `host ${i}: its new inbound SPI is mapped to it`);
  }
});

test('one-way traffic longer than esp_idle_s, then the server speaks: delivered', { skip: sluiceSkip() }, async (t) => {
  const tp = await natTopo('nlow', 2);
  t.after(() => tp.lab.cleanup());
  const { sl } = await startSluice(tp, (s) => t.diagnostic(s), { timeouts: { esp_idle_s: 2 } });
  // Hosts send 10/s for 9 s; the server answers nothing from +2.5 s to +7 s (longer than esp_idle_s).
  const { rs, sv } = await scenario(tp, ['12', '--quiet', '2.5:7'], () => ['--count', '90', '--interval', '0.1', '--until', '11']);
  await report(t, sl, rs, sv);
  for (const [k, r] of rs.entries()) {
    assert.equal(r!.misrouted, 0);
    // Replies resume after the quiet spell: everything sent in the last second was answered.
    const late = r!.missing.filter((n) => n >= r!.sent - 10);
    assert.deepEqual(late, [], `host ${k + 1}: replies after the quiet spell missing`);
    assert.ok(r!.good >= 40, `host ${k + 1}: ${r!.good} replies`);
  }
  // The inbound SAs outlived 4.5 s of silence (esp_idle_s 2): never unknown, never learned again.
  assert.equal(await sl.counter('nat.unknown_spi'), 0);
  const learned = await Promise.all(['nat.window_learned', 'nat.learned_reply', 'nat.learned_elimination'].map((c) => sl.counter(c)));
  assert.equal(learned.reduce((a, b) => a + b, 0), 2, 'each host\'s inbound SPI learned once');
});

test('a host opening 3 child SAs in one IKE_AUTH + CREATE_CHILD_SA burst: all 3 inbound SPIs learned', { skip: sluiceSkip() }, async (t) => {
  const tp = await natTopo('nlch', 3);
  t.after(() => tp.lab.cleanup());
  const { sl } = await startSluice(tp, (s) => t.diagnostic(s));
  // Host 1 opens 3 CHILD_SAs and stays quiet 2 s; hosts 2 and 3 connect at the same instant.
  const { rs, sv } = await scenario(tp, ['7'], (i) => [...(i === 1 ? ['--children', '3', '--idle', '2'] : []),
    '--count', '6', '--interval', '0.1', '--until', '6']);
  await report(t, sl, rs, sv);
  for (const [k, r] of rs.entries()) {
    assert.equal(r!.misrouted, 0);
    assert.deepEqual(r!.missing, [], `host ${k + 1}: replies missing`);
  }
  const list = await sl.request('stage', { stage: 'nat', name: 'sa-list', args: { host: '192.168.1.11' } }) as { esp_in: { spi: string }[] }[];
  assert.deepEqual(list[0]!.esp_in.map((e) => parseInt(e.spi, 16)).sort(), [0x2001, 0x2101, 0x2201], 'all three inbound SPIs of host 1');
});

test('a failed IKE_AUTH and a childless IKE_AUTH delay the others by less than 1 s', { skip: sluiceSkip() }, async (t) => {
  const tp = await natTopo('nlfa', 4);
  t.after(() => tp.lab.cleanup());
  const { sl } = await startSluice(tp, (s) => t.diagnostic(s));

  // Host 1: AUTHENTICATION_FAILED; host 2: IKE_AUTH without a CHILD_SA; hosts 3-4 connect at the same
  // instant (impatient) and talk after 3 s.
  const { rs, sv } = await scenario(tp, ['6', '--fail-auth', '1'], (i) => [...(i === 1 ? ['--fail'] : i === 2 ? ['--no-child'] : ['--idle', '3']),
    ...IMPATIENT, '--count', '5', '--interval', '0.1', '--until', '5']);
  await report(t, sl, rs, sv);
  for (const k of [2, 3]) {
    const r = rs[k]!;
    assert.equal(r.ike_ok, 1);
    assert.ok(r.ike_ms < 1000, `host ${k + 1}: IKE took ${r.ike_ms} ms`);
    assert.ok(r.ike_retx <= 1, `host ${k + 1}: ${r.ike_retx} retransmissions`);
    assert.ok(r.first_reply_ms >= 0 && r.first_reply_ms < 1000, `host ${k + 1}: first reply after ${r.first_reply_ms} ms`);
    assert.deepEqual(r.missing, []);
    assert.equal(r.misrouted, 0);
  }
});

for (const first of ['other', 'owner'] as const) {
  test(`the server pushes first on one of two idle hosts' new SAs; the ${first} host speaks next: never misrouted, resolved by ${first === 'other' ? 'elimination' : 'its reply'}`, { skip: sluiceSkip() }, async (t) => {
    const tp = await natTopo(first === 'other' ? 'nlpo' : 'nlpw', 2);
    t.after(() => tp.lab.cleanup());
    const { sl } = await startSluice(tp, (s) => t.diagnostic(s));
    // Both connect at once and idle; the server pushes to host 2 from +3 s for 2 s. 'other': host 1
    // speaks at +4 s (pushes still held: elimination); 'owner': host 2 speaks at +6.5 s, after the
    // pushes have been quiet longer than probe_ms (its reply claims the SPI).
    const { rs, sv } = await scenario(tp, ['9.5', '--push', '2:3'], (i) => ['--idle', first === 'other' ? (i === 1 ? '4' : '6') : (i === 2 ? '6.5' : '7.5'),
      '--count', '5', '--interval', '0.1', '--until', '9']);
    await report(t, sl, rs, sv);
    for (const [k, r] of rs.entries()) {
      assert.equal(r!.misrouted, 0, `host ${k + 1}: another host's packets arrived`);
      assert.deepEqual(r!.missing, [], `host ${k + 1}: replies missing`);
    }
    assert.ok(sv.pushes_sent >= 5);
    assert.ok(await sl.counter('nat.pending_held') > 0, 'the pushes were held while ambiguous');
    if (first === 'other') {
      assert.ok(rs[1]!.pushes > 0, 'held pushes reached host 2 once resolved');
      assert.equal(await sl.counter('nat.learned_elimination'), 1);
    } else {
      assert.equal(await sl.counter('nat.learned_reply'), 1);
    }
  });
}
