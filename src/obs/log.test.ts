/** log.format text, and what log.level debug adds (src/cli/debug-log.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, formatLogLine } from './log';
import { DebugLog } from '../cli/debug-log';
import { Engine } from '../engine/engine';
import { Interfaces } from '../io/interfaces';
import { FakeBinding } from '../io/fake';
import { NfQueue } from '../io/nfqueue';
import { natConfigSchema } from '../nat/config';
import { NatStage } from '../nat/stage';
import { esp, ip } from '../../test/kit/nat';
import { HOOK_POSTROUTING } from '../engine/stage';

test('text format: time, level, message, key=value (quoted when needed), error message', () => {
  const lines: string[] = [];
  const log = createLogger('info', 'text', (s) => lines.push(s));
  log.info({ config: '/etc/sluice/sluice.yaml', stages: ['nat', 'dhcp'], trigger: 'SIGHUP' }, 'reloaded');
  log.warn({ why: 'two words' }, 'careful');
  log.debug({}, 'not at info');
  log.error({ err: new Error('disk full') }, 'journal degraded');
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  reloaded config=\/etc\/sluice\/sluice\.yaml stages=\["nat","dhcp"\] trigger=SIGHUP\n$/);
  assert.match(lines[1]!, /WARN  careful why="two words"\n$/);
  assert.match(lines[2]!, /ERROR journal degraded err="disk full"\nError: disk full\n {4}at /);
  assert.equal(formatLogLine('not json'), 'not json', 'anything else passes through');
});

test('debug: a periodic engine summary with drops by reason, and NAT SA events', async () => {
  const lines: string[] = [];
  const log = createLogger('debug', 'text', (s) => lines.push(s));
  const engine = new Engine({ held: { max: 10, timeoutMs: 100, defaultVerdict: 'accept' }, interfaces: Interfaces.fromList([]) });
  const nat = new NatStage(natConfigSchema.parse({ public: ['203.0.113.1'], wan_interface: 'eth1', journal: { path: null } }));
  engine.setPipeline([nat]);
  const fake = new FakeBinding();
  let src = -1;
  const q = NfQueue.open({ queue: 1 }, (b) => engine.handleBatch(src, b), fake);
  src = engine.addSource(q, 1, { defaultVerdict: 'accept', onInvalid: 'drop' });
  const dbg = new DebugLog(log, engine, 30);
  dbg.start();
  dbg.pipeline(engine.pipeline);
  await new Promise((r) => setImmediate(r));
  fake.queue(1).feed([{ bytes: esp(ip('10.0.0.2'), ip('198.51.100.10'), 0xaaaa0001), hook: HOOK_POSTROUTING }, { bytes: new Uint8Array([0x45, 0]) }]);
  await new Promise((r) => setTimeout(r, 80));
  dbg.stop();
  await engine.close();
  const text = lines.join('');
  assert.match(text, /DEBUG SA new sa=esp_out host=10\.0\.0\.2 public=203\.0\.113\.1 server=198\.51\.100\.10 spi=aaaa0001/);
  assert.match(text, /DEBUG engine summary seconds=0\.03 packets=2 batches=1 accepted=1 dropped=1 .*drops=\{"engine\.invalid\.\w+":1\}/);
  // The stream ends at its next heartbeat (at most 1 s): then the state has no listener.
  for (let i = 0; i < 40 && nat.state.onSaEvent !== null; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(nat.state.onSaEvent, null, 'stop() ends the SA event subscription');
});
