import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './load';
import { loadConfigOffThread } from './offthread';

test('loadConfigOffThread: the same Config as loadConfig, set files included; ConfigError with the same problems', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-offthread-'));
  try {
    writeFileSync(join(dir, 'nets.txt'), '10.1.0.0/16\n192.0.2.0/24 # lab\n');
    const file = join(dir, 'cfg.yaml');
    writeFileSync(file, [
      'queues: [{ num: 4 }]',
      'steer:',
      '  address_sets: { nets: { file: nets.txt } }',
      '  maps: { m: { key: dport, elements: { 443: accept } } }',
      '  rules:',
      '    - { name: a, match: { src: "@nets" }, action: { mark: "0x10/0xff" } }',
      '    - { name: b, match: { proto: tcp }, action: { map: m } }',
    ].join('\n'));
    assert.deepEqual(await loadConfigOffThread(file), await loadConfig(file));
    writeFileSync(join(dir, 'nets.txt'), '10.1.0.0/16\n10.1.0.0/40\n');
    const want = await loadConfig(file).then(() => [], (e: ConfigError) => e.problems);
    assert.ok(want.length > 0 && /nets\.txt:2/.test(want.join('\n')));
    await assert.rejects(loadConfigOffThread(file), (e: unknown) => e instanceof ConfigError && JSON.stringify(e.problems) === JSON.stringify(want));
    await assert.rejects(loadConfigOffThread(join(dir, 'missing.yaml')), /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadConfigOffThread: a FIFO (nobody writing) is refused at once with a ConfigError naming it, not a hang', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-offthread-'));
  try {
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const t0 = Date.now();
    await assert.rejects(loadConfigOffThread(fifo), (e: unknown) => e instanceof ConfigError
      && /fifo\.yaml: is a FIFO; sluice reads its config only from a regular file/.test(e.message));
    assert.ok(Date.now() - t0 < 5000, `refused in ${Date.now() - t0} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
