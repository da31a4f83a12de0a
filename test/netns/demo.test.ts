/** `npm start`'s demo runs end to end and shows what it promises. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { labSkipReason } from '../../src/lab/lab';
import { SLUICE_MAIN } from '../../src/lab/sluice';

test('sluice demo: traffic through sluice, counters, a tunnel client learning classless routes', { skip: labSkipReason(), timeout: 300000 }, () => {
  const r = spawnSync(process.execPath, [SLUICE_MAIN, 'demo'], { encoding: 'utf8', timeout: 280000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /5 packets transmitted, 5 received/);
  assert.match(r.stdout, /UDP datagrams received: 2000 of 2000 sent/);
  assert.match(r.stdout, /engine\.packets\s+\d{4}/);
  assert.match(r.stdout, /new_classless_static_routes='10\.0\.0\.0\/8 192\.168\.42\.1 172\.16\.0\.0\/12 192\.168\.42\.1'/);
  assert.match(r.stdout, /INFORMs answered by sluice: 1/);
  assert.match(r.stdout, /== ESP NAT: 4 IPsec clients, one public address, one server ==/);
  assert.doesNotMatch(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout, /sl-demo-/, 'the demo removed its namespaces');
});
