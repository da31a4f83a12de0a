import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfigText } from './load';

function problems(text: string): string[] {
  try {
    parseConfigText(text, 'c.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('config was accepted');
}

test('defaults fill an empty config', () => {
  const c = parseConfigText('', 'c.yaml');
  assert.equal(c.queues.length, 1);
  assert.equal(c.queues[0]!.num, 0);
  assert.equal(c.queues[0]!.copy_range, 65535);
  assert.equal(c.held.timeout_ms, 5000);
});

test('bad YAML names the line', () => {
  const p = problems('queues:\n  - num: 1\n   bad: [\n');
  assert.match(p[0]!, /^c\.yaml:\d+:\d+: YAML: /);
});

test('a wrong type names the field path and its line', () => {
  const p = problems('queues:\n  - num: 1\n  - num: "two"\n');
  assert.equal(p.length, 1);
  assert.match(p[0]!, /^c\.yaml:3:\d+: queues\[1\]\.num: /);
});

test('an unknown key is an error at the key', () => {
  const p = problems('queues:\n  - num: 1\n    fail_opne: true\n');
  assert.match(p[0]!, /^c\.yaml:3:5: queues\[0\]\.fail_opne: unknown key/);
});

test('an unknown top-level section is an error', () => {
  assert.match(problems('natt: {}\n')[0]!, /^c\.yaml:1:1: natt: unknown key/);
});

test('duplicate queue numbers are refused', () => {
  assert.match(problems('queues:\n  - num: 3\n  - num: 3\n')[0]!, /queues\[1\]\.num: queue 3 appears twice/);
});

test('duplicate YAML keys are refused', () => {
  assert.match(problems('held:\n  max: 1\n  max: 2\n')[0]!, /YAML: .*[Uu]nique|Map keys must be unique/);
});

test('tun sources with workers > 1 are accepted (each worker opens one queue of the device)', () => {
  assert.doesNotThrow(() => parseConfigText('workers: 2\nqueues:\n  - num: 5\ntun:\n  - name: tun7\n', 'c.yaml'));
});

test('range checks report the limit', () => {
  assert.match(problems('queues:\n  - num: 70000\n')[0]!, /queues\[0\]\.num: .*65535/);
});

test('a control socket path longer than a sockaddr_un holds is a check error', () => {
  const p = problems(`control:\n  socket: /run/${'s'.repeat(110)}.sock\n`);
  assert.match(p[0]!, /control\.socket: at most 107 bytes/);
  assert.doesNotThrow(() => parseConfigText(`control:\n  socket: /run/${'s'.repeat(90)}.sock\n`, 'c.yaml'));
});
