/**
 * Issue 3's (d) rewrite, (e) hold and (h) injection cases: the real kernel queue with test-only
 * stages (test/netns/fixtures/engine-harness.ts) in the gateway namespace.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { labSkipReason, sleep, type Proc } from '../../src/lab/lab';
import { UdpSink, sendUdp } from '../../src/lab/traffic';
import { gatewayLab, type Gateway } from './gateway';

const HARNESS = resolve(__dirname, 'fixtures/engine-harness.js');
const skip = labSkipReason();

describe('engine paths on a real queue', { skip }, () => {
  let g: Gateway;
  before(async () => { g = await gatewayLab('eng'); });
  after(async () => { await g?.lab.cleanup(); });

  async function harness(...args: string[]): Promise<Proc> {
    const p = g.gw.spawn([process.execPath, HARNESS, ...args]);
    await p.waitFor(/ready/);
    return p;
  }
  const queueAll = (num: number) =>
    g.gw.sh(`iptables -t mangle -F PREROUTING && iptables -t mangle -A PREROUTING -i lan0 -p udp -j NFQUEUE --queue-num ${num}`);

  test('(d) an in-place payload rewrite arrives with valid checksums', async () => {
    const h = await harness('rewrite', '11');
    try {
      await queueAll(11);
      const sink = await UdpSink.start(g.server, 7000);
      const capture = g.server.spawn(['tcpdump', '-ni', 'eth0', '--immediate-mode', '-vv', '-c', '20', 'udp port 7000']);
      await capture.waitFor(/listening/);
      await sendUdp(g.client, '192.0.2.10', 7000, 20, { size: 32, pps: 200 });
      await sleep(300);
      const got = await sink.finish();
      await capture.stop();
      // The kernel drops datagrams whose UDP checksum is wrong before the socket sees them, so 20
      // received means 20 valid checksums; tcpdump -vv says so too.
      assert.equal(got.received, 20);
      for (const p of got.first) assert.match(p, /^X\d{7}\.+$/, 'first payload byte rewritten');
      assert.doesNotMatch(capture.output, /bad udp cksum|incorrect/);
      assert.match(capture.output, /udp sum ok/);
    } finally {
      await h.stop();
    }
  });

  test('(e) a held packet arrives after its release; an unreleased one gets the timeout verdict', async () => {
    for (const mode of ['accept', 'drop'] as const) {
      const queue = mode === 'accept' ? '12' : '13d';
      const h = await harness('hold', queue, '400');
      try {
        await queueAll(parseInt(queue, 10));
        const released = await UdpSink.start(g.server, 6000);
        const timedOut = await UdpSink.start(g.server, 6001);
        const t0 = Date.now();
        await sendUdp(g.client, '192.0.2.10', 6000, 3, { pps: 100 });
        await sendUdp(g.client, '192.0.2.10', 6001, 3, { pps: 100 });
        await sleep(150);
        const early = await UdpSink.start(g.server, 6002);
        await early.finish();
        await sleep(900 - (Date.now() - t0));
        const r = await released.finish();
        const t = await timedOut.finish();
        assert.equal(r.received, 3, 'released packets arrive');
        assert.equal(t.received, mode === 'accept' ? 3 : 0, `timed-out packets get the default verdict (${mode})`);
      } finally {
        await h.stop();
      }
      const counters = JSON.parse(h.stdout.trim().split('\n').pop()!) as { name: string; value: number }[];
      const get = (n: string) => counters.find((c) => c.name === n)?.value ?? 0;
      assert.equal(get('engine.held'), 6);
      assert.equal(get('engine.released'), 3);
      assert.equal(get('engine.held_expired'), 3);
    }
  });

  test('(e) release timing: a held packet arrives only after its release', async () => {
    const h = await harness('hold', '14', '700');
    try {
      await queueAll(14);
      const sink = await UdpSink.start(g.server, 6000);
      const sentAt = Date.now();
      await sendUdp(g.client, '192.0.2.10', 6000, 1, { pps: 100 });
      await sleep(1200);
      const got = await sink.finish();
      assert.equal(got.received, 1);
      const delay = got.times[0]! - sentAt;
      assert.ok(delay >= 650, `arrived ${delay.toFixed(0)} ms after sending; the release came at 700 ms`);
    } finally {
      await h.stop();
    }
  });

  test('(h) injection leaves the chosen interface even when another has the same address', async () => {
    // wan0 and wan1 both get 10.77.0.1/24; routing would pick one of them for 10.77.0.2.
    await g.gw.sh('ip addr add 10.77.0.1/24 dev wan0 && ip addr add 10.77.0.1/24 dev wan1');
    await g.server.sh('ip addr add 10.77.0.2/24 dev eth0 && ip addr add 10.77.0.3/24 dev eth1');
    try {
      for (const [dev, seenOn, notOn] of [['wan1', 'eth1', 'eth0'], ['wan0', 'eth0', 'eth1']] as const) {
        const on = g.server.spawn(['tcpdump', '-ni', seenOn, '--immediate-mode', '-c', '1', 'udp port 4001']);
        const off = g.server.spawn(['tcpdump', '-ni', notOn, '--immediate-mode', 'udp port 4001']);
        await on.waitFor(/listening/);
        await off.waitFor(/listening/);
        const inj = g.gw.spawn([process.execPath, HARNESS, 'inject', '0', dev, '10.77.0.1', '10.77.0.2']);
        await inj.exited;
        assert.match(inj.stdout, new RegExp(`sent via ${dev}`));
        await Promise.race([on.exited, sleep(3000)]);
        await on.stop();
        await off.stop();
        assert.match(on.output, /10\.77\.0\.1\.4000 > 10\.77\.0\.2\.4001: UDP/, `seen on ${seenOn}`);
        assert.match(off.output, /0 packets captured/, `not seen on ${notOn}`);
      }
    } finally {
      await g.gw.sh('ip addr del 10.77.0.1/24 dev wan0; ip addr del 10.77.0.1/24 dev wan1', { allowFail: true });
    }
  });
});
