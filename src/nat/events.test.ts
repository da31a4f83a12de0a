/**
 * `sa --events`, `sa delete`, `sa flush` and the --spi filter on a NAT stage fed with packets from
 * the test kit: events as SAs appear (new, learned, paired) and go (deleted, expired).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { natConfigSchema } from './config';
import { NatStage } from './stage';
import { saList, type SaListEntry } from './commands';
import { formatSaEvent, type SaEvent } from './events';
import { FakeServices, IKE_AUTH, IKE_SA_INIT, esp, ike, inb, ip, out } from '../../test/kit/nat';
import { Verdict } from '../engine/stage';

const PUB = ip('203.0.113.1'), SRV = ip('198.51.100.10'), H1 = ip('10.0.0.2'), H2 = ip('10.0.0.3');

function setup(): { st: NatStage; fs: FakeServices } {
  const st = new NatStage(natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: null } }));
  const fs = new FakeServices();
  st.init(fs);
  return { st, fs };
}

/** Collects what the stream yields while `act` runs. */
async function events(st: NatStage, args: Record<string, unknown>, act: () => void | Promise<void>): Promise<SaEvent[]> {
  const it = st.command('sa-events', args) as AsyncGenerator<{ events: SaEvent[]; dropped: number }>;
  const first = it.next(); // subscribes
  await new Promise((r) => setImmediate(r));
  await act();
  const got: SaEvent[] = [...(await first).value.events];
  await it.return(undefined);
  assert.equal(st.state.onSaEvent, null, 'the last listener leaving unhooks the state');
  return got;
}

/** Host h: IKE_SA_INIT out, response in, IKE_AUTH out and in; then outbound ESP spiOut and inbound ESP spiIn. */
function negotiate(st: NatStage, fs: FakeServices, h: number, ispi: bigint, spiOut: number, spiIn: number): void {
  out(st, fs, ike(h, SRV, { ispi, exchange: IKE_SA_INIT }));
  inb(st, fs, ike(SRV, PUB, { ispi, rspi: ispi + 1n, exchange: IKE_SA_INIT, flags: 0x20 }));
  out(st, fs, ike(h, SRV, { ispi, rspi: ispi + 1n, exchange: IKE_AUTH, msgId: 1, port: 4500 }));
  inb(st, fs, ike(SRV, PUB, { ispi, rspi: ispi + 1n, exchange: IKE_AUTH, msgId: 1, flags: 0x20, port: 4500 }));
  out(st, fs, esp(h, SRV, spiOut));
  const r = inb(st, fs, esp(SRV, PUB, spiIn));
  assert.equal(r.verdict, Verdict.ACCEPT, 'the inbound SPI was learned');
}

test('events: new IKE and ESP records, the inbound SPI learned, then paired with the outbound one; host filter', async () => {
  const { st, fs } = setup();
  const got = await events(st, {}, () => negotiate(st, fs, H1, 0x1111n, 0xaaaa0001, 0xbbbb0001));
  const kinds = got.map((e) => `${e.event} ${e.sa} ${e.spi}`);
  assert.ok(kinds.includes('new ike 0000000000001111'), kinds.join('; '));
  assert.ok(kinds.includes('new esp_out aaaa0001'), kinds.join('; '));
  assert.ok(got.some((e) => e.event === 'learned' && e.sa === 'esp_in' && e.spi === 'bbbb0001' && e.host === '10.0.0.2'), kinds.join('; '));
  assert.ok(got.some((e) => e.event === 'paired' && e.sa === 'esp_in' && e.spi === 'bbbb0001' && e.paired === true), `the two directions paired: ${kinds.join('; ')}`);
  assert.match(formatSaEvent(got.find((e) => e.event === 'learned')!), /^\S+ \[LEARNED\] esp_in host=10\.0\.0\.2 public=203\.0\.113\.1 server=198\.51\.100\.10 spi=bbbb0001 learned=\w+/);
  const other = await events(st, { host: '10.0.0.3' }, () => { out(st, fs, esp(H1, SRV, 0xaaaa0009)); });
  assert.deepEqual(other, [], 'another host\'s SA is not shown with --host 10.0.0.3');
});

test('sa delete by SPI / host; sa flush; each removal is a DELETED event; --spi lists one SA', async () => {
  const { st, fs } = setup();
  negotiate(st, fs, H1, 0x1111n, 0xaaaa0001, 0xbbbb0001);
  negotiate(st, fs, H2, 0x2222n, 0xaaaa0002, 0xbbbb0002);
  const one = saList(st, { spi: 'bbbb0002' });
  assert.deepEqual(one.map((g: SaListEntry) => [g.host, g.esp_in.map((r) => r.spi), g.esp_out.length, g.ike.length]), [['10.0.0.3', ['bbbb0002'], 0, 0]]);
  assert.equal(saList(st, { spi: '0000000000002222' })[0]!.ike.length, 1, '16 hex digits: an IKE initiator SPI');
  assert.throws(() => st.command('sa-delete', {}), /needs --host, --server and\/or --spi/);
  assert.throws(() => st.command('sa-delete', { spi: 'xyz' }), /bad SPI/);
  const gone = await events(st, {}, () => { assert.deepEqual(st.command('sa-delete', { spi: '0xbbbb0002' }), { deleted: 1 }); });
  assert.deepEqual(gone.map((e) => [e.event, e.spi]), [['deleted', 'bbbb0002']]);
  assert.deepEqual(saList(st, { spi: 'bbbb0002' }), [], 'gone from the listing');
  assert.deepEqual(st.command('sa-delete', { host: '10.0.0.2' }), { deleted: 3 });
  assert.deepEqual(saList(st, { host: '10.0.0.2' }), []);
  const before = st.state.sas.count;
  assert.ok(before > 0);
  assert.deepEqual(st.command('sa-flush', {}), { deleted: before });
  assert.equal(st.state.sas.count, 0);
});

test('an idle record goes as EXPIRED', async () => {
  const { st, fs } = setup();
  out(st, fs, esp(H1, SRV, 0xaaaa0001));
  const got = await events(st, {}, () => {
    fs.time += (st.cfg.timeouts.esp_idle_s + 5) * 1000;
    st.tick(fs.time);
  });
  assert.deepEqual(got.map((e) => [e.event, e.sa, e.spi]), [['expired', 'esp_out', 'aaaa0001']]);
});
