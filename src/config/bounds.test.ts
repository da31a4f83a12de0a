/** Config input bounds: size, depth (flow and block), node count, alias bombs, non-regular files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfigText } from './load';
import { MAX_CONFIG_BYTES } from './bounds';

function refused(text: string): string {
  const t0 = performance.now();
  try {
    parseConfigText(text, 'c.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.ok(performance.now() - t0 < 2000, 'refused quickly');
    return e.problems.join('\n');
  }
  assert.fail('config was accepted');
}

test('deep flow nesting ([[[[... 10 KB) is refused before the parser, 100 times in a row without growing memory', () => {
  const deep = `queues: ${'['.repeat(10_000)}`;
  assert.match(refused(deep), /^c\.yaml:1: flow collections \(\[ or \{\) nested deeper than 32 levels/);
  const m0 = process.memoryUsage().rss;
  for (let i = 0; i < 100; i++) refused(deep); // what SIGHUP ×100 did
  assert.ok(process.memoryUsage().rss - m0 < 64 << 20);
  assert.match(refused(`a: ${'{x: '.repeat(40)}1${'}'.repeat(40)}`), /nested deeper/);
});

test('deep block nesting is refused, naming the line', () => {
  let t = '';
  for (let i = 0; i < 40; i++) t += `${' '.repeat(i * 2)}k${i}:\n`;
  assert.match(refused(t), /^c\.yaml:33: block collections nested deeper than 32 levels/);
  assert.match(refused(`a:\n  ${'- '.repeat(40)}x\n`), /block collections nested deeper/);
});

test('quotes and comments do not count as nesting; a normal config passes', () => {
  parseConfigText('# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\nlog:\n  level: "info" # {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\n', 'c.yaml');
  parseConfigText(`log: {level: '${'['.repeat(100)}'}\n`.replace(/'\[+'/, 'info'), 'c.yaml');
});

test('an alias bomb is a config error (exit 2), not a crash', () => {
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
    'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]', 'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]'].join('\n');
  assert.match(refused(bomb), /aliases expand too much/);
});

test('size and node count are bounded', () => {
  assert.match(refused(`# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`), /at most 1048576/);
  let many = 'x:\n';
  for (let i = 0; i < 60_000; i++) many += '- 1\n';
  assert.match(refused(many), /more than 50000 YAML nodes/);
  assert.match(refused(`x: [${'1,'.repeat(60_000)}1]`), /more than 50000 YAML nodes/);
  // Under the line bound but over the node bound (three nodes a line): the tree walk catches it.
  let pairs = 'x:\n';
  for (let i = 0; i < 20_000; i++) pairs += `- {a: 1, b: 2}\n`;
  assert.match(refused(pairs), /more than 50000 YAML nodes/);
});

test('only regular files are read: a FIFO, a directory and an oversized file are refused at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bounds-'));
  try {
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(loadConfig(fifo), (e: ConfigError) => e instanceof ConfigError && /is a FIFO; sluice reads its config only from a regular file/.test(e.message));
    await assert.rejects(loadConfig(dir), /is a directory/);
    const big = join(dir, 'big.yaml');
    writeFileSync(big, Buffer.alloc(5 << 20, 0x20));
    await assert.rejects(loadConfig(big), /5242880 bytes; a config may have at most 1048576 bytes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
