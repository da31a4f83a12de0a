/**
 * The steer (and policy) classifiers compiled once and run by other threads (src/select/shared.ts): a worker thread
 * runs the main thread's image without copying it (a write the main thread makes to the image is
 * what the worker's classifier reads next), and a worker reload swaps to the new image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { configSchema } from '../config/schema';
import { FakeBinding } from '../io/fake';
import { Interfaces } from '../io/interfaces';
import { HOOK_PREROUTING } from '../engine/stage';
import { V_ACCEPT, V_DROP } from '../io/batch-layout';
import { createLogger } from '../obs/log';
import { compileImages } from '../cli/pipeline';
import { WorkerCore } from '../cli/worker-thread';
import { SteerStage } from '../steer/stage';
import { tcpRepr, ACK_FLAG } from '../packet/tcp';
import { ipv4Raw } from '../packet/build';
import { ip4 } from '../packet/bytes';

// 80 rules (the tuple-space classifier, not the small-set path): rule i marks TCP to port 1000 + i from 10.0.i.0/24.
const rules = (base: number): unknown[] => Array.from({ length: 80 }, (_, i) => ({
  name: `r${i}`, match: { proto: 'tcp', dport: 1000 + i, src: `10.0.${i}.0/24` }, action: { mark: `0x${(base + i).toString(16)}/0xffff` },
}));
const config = (base: number) => configSchema.parse({
  workers: 2, queues: [{ num: 5 }], steer: { rules: rules(base) },
  policy: { default: 'bypass', policies: [{ name: 'no-telnet', match: { proto: 'tcp', dport: 23 }, action: 'discard' }] },
});

function tcp(src: string, dport: number): Uint8Array {
  const t = { srcPort: 40000, dstPort: dport, flags: ACK_FLAG, payload: new Uint8Array(0) };
  const seg = new Uint8Array(tcpRepr.encodingLength(t));
  tcpRepr.encode(t, seg, 0, { src: ip4(src), dst: ip4('192.0.2.1') });
  return ipv4Raw({ src: ip4(src), dst: ip4('192.0.2.1'), protocol: 6 }, seg);
}

test('a worker thread runs the main thread\'s steer image in place: the main thread\'s write is what it reads', async () => {
  const cfg = config(0x100);
  const im = (await compileImages(cfg)).steer!;
  const stage = SteerStage.fromImage(cfg.steer!, im);
  // The worker classifies one packet (10.0.7.5 → port 1007: rule 7) under the mark it is sent.
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { Matcher } = require(workerData.match);
    const { Classified } = require(workerData.classify);
    const m = Matcher.fromImage(workerData.image);
    m.bind({ nameOf: () => undefined, onRefresh: () => {} });
    const info = new Classified();
    info.ipVersion = 4; info.proto = 6; info.src = 0x0a000705; info.dst = 0xc0000201; info.sport = 40000; info.dport = 1007;
    parentPort.on('message', (mark) => parentPort.postMessage(m.first({ info, mark, indev: 0, outdev: 0, hook: 0, queue: 5 })));
  `, { eval: true, workerData: { image: im.matcher, match: join(__dirname, 'match.js'), classify: join(__dirname, '../packet/classify.js') } });
  const ask = (mark: number): Promise<number> => new Promise((r) => { worker.once('message', r); worker.postMessage(mark); });
  try {
    assert.equal(await ask(0), 7, 'the worker matches rule 7 through the image');
    assert.equal(stage.compiled.names[7], 'r7');
    // Make rule 7 also require mark 0x5/0xff (the selector table's mark fields, in shared memory): only
    // a worker reading this thread's memory sees the change; a copy would still match.
    const t = im.matcher.t as unknown as { present: Uint32Array; markValue: Int32Array; markMask: Int32Array };
    t.markValue[7] = 5; t.markMask[7] = 0xff; t.present[7] = t.present[7]! | 8192; // F_MARK
    assert.equal(await ask(0), -1, 'the worker sees the main thread\'s write: the table is shared, not copied');
    assert.equal(await ask(5), 7);
  } finally {
    await worker.terminate();
  }
});

test('WorkerCore runs the steer and policy images it is given and a reload swaps to the new ones', async () => {
  const a = config(0x100), b = config(0x200);
  const imA = await compileImages(a), imB = await compileImages(b);
  assert.equal((await compileImages(a, { cfg: a, images: imA })).steer, imA.steer, 'an unchanged section keeps its image');
  const fake = new FakeBinding();
  const core = new WorkerCore({ index: 0, cfg: a, nat: null, stateDir: '/nonexistent', images: imA }, fake, createLogger('silent'), () => {}, Interfaces.fromList([]));
  core.openQueues();
  const steer = (): SteerStage => core.engine.pipeline.find((s) => s.name === 'steer') as SteerStage;
  const matcherOf = (s: SteerStage) => (s as unknown as { matcher: { image(): { rowSel: Int32Array } } }).matcher.image();
  const mark = (): number => {
    const [v] = fake.queue(5).feed([{ bytes: tcp('10.0.3.9', 1003), hook: HOOK_PREROUTING, indev: 2 }]);
    assert.equal(v!.verdict, V_ACCEPT);
    return v!.mark;
  };
  assert.equal(matcherOf(steer()).rowSel.buffer, imA.steer!.matcher.rowSel.buffer, 'the worker runs image A, not a copy');
  const policy = core.engine.pipeline.find((s) => s.name === 'policy')!;
  assert.equal(matcherOf(policy as unknown as SteerStage).rowSel.buffer, imA.policy!.matcher.rowSel.buffer, 'the policy classifier too');
  assert.equal(fake.queue(5).feed([{ bytes: tcp('10.0.3.9', 23), hook: HOOK_PREROUTING, indev: 2 }])[0]!.verdict, V_DROP, 'policy from the image discards telnet');
  assert.equal(mark(), 0x103);
  await core.reload(b, null, imB);
  assert.equal(matcherOf(steer()).rowSel.buffer, imB.steer!.matcher.rowSel.buffer, 'after the reload: image B');
  assert.equal(mark(), 0x203);
  await core.close();
});
