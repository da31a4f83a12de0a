/**
 * Interface tracking from rtnetlink events and the kernel's route lookup, in a fresh namespace.
 * Control: /proc/net/route (what the DHCP relay used) sees only the main table and misses the
 * policy rule that sluice itself installs for steering.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { labSkipReason } from './lab';

function skip(): string | false {
  const r = labSkipReason();
  if (r) return r;
  if (!existsSync(resolve(__dirname, '../../../build/Release/sluice_native.node'))) return 'addon not built (npm run build)';
  return false;
}

test('rtnetlink: links and addresses tracked as they come, rename and go; RTM_GETROUTE honours ip rule (/proc/net/route does not)', { skip: skip(), timeout: 30000 }, () => {
  const ns = `sluice-rtnl-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const out = execFileSync('ip', ['netns', 'exec', ns, process.execPath, resolve(__dirname, 'rtnl-child.js')], { encoding: 'utf8', timeout: 25000 });
    const r = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(r.tracking, true);
    assert.deepEqual(r.initial, ['lo']);
    for (const k of ['linkSeen', 'addrSeen', 'renamed', 'addrGone', 'linkGone']) assert.equal(r[k], true, k);
    assert.equal(r.prefix, 32);
    assert.ok((r.refreshes as number) >= 5, 'listeners told of each change');
    assert.equal(r.kernelPlain, 'wan0', 'main table: default route');
    assert.equal(r.kernelMarked, 'tun0', 'fwmark 0x10 → table 100 (ip rule)');
    assert.equal(r.gateway, 0xc0a832fe);
    assert.equal(r.procRoute, 'wan0', 'control: /proc/net/route knows only the main table');
    assert.equal(r.unreachable, null, 'no route: null, not an exception');
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
});
