import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { dhcpConfigSchema } from './config';
import { dhcpRules } from './rules';

const ROOT = resolve(__dirname, __dirname.includes('/dist/') ? '../../..' : '../..');

for (const f of ['dhcp-inform.yaml', 'dhcp-relay.yaml']) {
  test(`examples/${f}: the dhcp section validates and yields rules`, () => {
    const doc = parse(readFileSync(resolve(ROOT, 'examples', f), 'utf8')) as { dhcp: unknown };
    const r = dhcpConfigSchema.safeParse(doc.dhcp);
    assert.ok(r.success, r.success ? '' : JSON.stringify(r.error.issues));
    assert.ok(dhcpRules(r.data).iptables.length >= 2);
  });
}
