/**
 * The NAT journal under real filesystem faults: a tmpfs filled to ENOSPC and a tmpfs remounted
 * read-only (EROFS), each in a private mount namespace (unshare -m) so nothing on the host changes.
 * The stage must keep translating, raise one alarm, count what it could not save, and recover by
 * rewriting the journal from memory once the filesystem works again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isRoot } from './lab';

function skip(): string | false {
  if (!isRoot()) return 'needs root (mount namespaces, tmpfs)';
  try { execFileSync('unshare', ['--version'], { stdio: 'ignore' }); } catch { return 'unshare (util-linux) missing'; }
  return false;
}

for (const mode of ['full', 'ro'] as const) {
  test(`NAT journal on a ${mode === 'full' ? 'full tmpfs (ENOSPC)' : 'read-only filesystem (EROFS, remounted ro in a private mount namespace)'}: packets go on, one alarm, recovery rewrites it`, { skip: skip(), timeout: 60000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), `sluice-jfault-${mode}-`));
    try {
      const child = resolve(__dirname, 'journal-fault-child.js');
      const out = execFileSync('unshare', ['--mount', '--propagation', 'private', process.execPath, child, mode, dir], { encoding: 'utf8', timeout: 50000 });
      const r = JSON.parse(out.trim().split('\n').pop()!) as {
        during: { degraded: boolean; lastError: string; lost: number; alarms: number; gauge: number; translated: number };
        retryWhileBroken: { degraded: boolean };
        after: { degraded: boolean; gauge: number };
        restart: { sas: number; refused: number; translated: number };
      };
      assert.equal(r.during.degraded, true);
      assert.match(r.during.lastError, mode === 'full' ? /ENOSPC/ : /EROFS/);
      assert.equal(r.during.alarms, 1, 'one alarm, not one per change');
      assert.equal(r.during.gauge, 1, 'nat_journal_degraded gauge raised');
      assert.ok(r.during.lost > 0 && r.during.lost <= 2900, `lost ${r.during.lost}`);
      assert.equal(r.during.translated, 3000, 'every mapping still translates while the disk fails');
      assert.equal(r.retryWhileBroken.degraded, true);
      assert.equal(r.after.degraded, false, 'recovered once the filesystem works');
      assert.equal(r.after.gauge, 0);
      assert.equal(r.restart.sas, 3010, 'the rewrite saved what the fault had lost');
      assert.equal(r.restart.refused, 0);
      assert.equal(r.restart.translated, 3010);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
